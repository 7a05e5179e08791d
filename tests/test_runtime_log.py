"""The stderr filter of multi-process jobs: jax's runtime lines dropped, everything else as it comes, one line at the end."""

from hypothesis import given
from hypothesis import strategies as st

from cartpole_jax.runtime_log import GAP, Filter

E = b"E1202 17:45:42.089109   16955 coordination_service_agent.cc:289] Polled an error from coordination service.\n"
F = (b"F1202 17:45:42.089154   16955 client.h:80] Terminating process because the JAX distributed service detected "
     b"fatal errors. absl::Status: DEADLINE_EXCEEDED: Deadline Exceeded\n\nRPC: /xla.coordination.CoordinationService/RegisterTask\n")
STACK = b"*** Check failure stack trace: ***\n    @     0x7f13e5e40634  absl::log_internal::LogMessage::SendToLog()\n"
OURS = b"cartpole-jax: error: process 1 of 2: the multi-process job broke; checkpoints already saved are kept\n"


def run(pieces, times=None) -> bytes:
    f = Filter("process 0 of 2")
    times = times or [0.0] * len(pieces)
    return b"".join(f.feed(p, t) for p, t in zip(pieces, times, strict=True)) + f.finish()


def test_everything_but_runtime_lines_passes_unchanged():
    text = b"/x.py:3: UserWarning: careful\n  warnings.warn(\nprogress 10%\rprogress 20%\rdone\n"
    assert run([text]) == text
    assert run([E, b"Ending soon\n"], [0.0, 1.0]) == b"Ending soon\n"  # later than GAP: not a continuation


@given(st.lists(st.integers(1, 40), max_size=12))
def test_how_the_bytes_are_split_does_not_matter(cuts):
    text = b"warming up\n" + E + b"  more of E\n" + OURS
    pieces, at = [], 0
    for c in cuts:
        pieces.append(text[at:at + c])
        at += c
    pieces.append(text[at:])
    assert run(pieces) == b"warming up\n" + OURS


def test_partial_lines_are_forwarded_at_once_unless_they_could_be_runtime_lines():
    f = Filter("p")
    assert f.feed(b"step 3/10", 0.0) == b"step 3/10"  # a progress line is shown as it is written
    f = Filter("p")
    assert f.feed(b"E1202 17:4", 0.0) == b""  # held: it may be the runtime's
    assert f.feed(b"5:42.1 1 x.cc:1] gone\n", 0.0) == b""
    assert f.feed(b"Error: mine\n", 1.0) == b"Error: mine\n"


def test_a_fatal_runtime_message_becomes_one_line_naming_the_process_and_the_cause():
    out = run([E, F, STACK]).decode()
    assert out == ("cartpole-jax: error: process 0 of 2: jax's distributed runtime ended the job (DEADLINE_EXCEEDED: "
                   "Deadline Exceeded, in RegisterTask: not every process joined in time); checkpoints already saved are kept\n")


def test_our_own_error_line_is_the_only_line_even_right_after_a_fatal_message():
    assert run([E, F, b"Additional GRPC error information:\n:UNKNOWN: Socket closed\n", OURS], [0.0, 0.0, 0.01, 0.02]) == OURS
    assert run([F, OURS, STACK], [0.0, 0.0, 5.0]) == OURS  # the stack trace is dropped however late it comes


def test_lines_soon_after_a_runtime_line_are_its_continuation():
    assert run([E, b"  detail\n", b"later\n"], [0.0, GAP / 2, GAP * 3]) == b"later\n"


def test_a_traceback_right_after_a_runtime_line_is_shown_whole():
    tb = b'Traceback (most recent call last):\n  File "x.py", line 1, in <module>\nValueError: a bug of ours\n'
    assert run([E, tb], [0.0, 0.01]) == tb
    assert run([E, OURS, b"  and a second line of ours\n"], [0.0, 0.01, 0.02]) == OURS + b"  and a second line of ours\n"


def test_only_the_runtime_s_own_f_line_counts_as_fatal():
    assert run([E, b"Failed to connect, retrying\n"], [0.0, 0.01]) == b""  # a continuation that starts with F
