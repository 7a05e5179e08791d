"""An animated GIF of one greedy episode: cart, pole, track, step counter and return, drawn with Pillow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .atomic import replacing

WIDTH, HEIGHT = 480, 240
X_LIMIT = 2.4  # CartPole-v1 ends an episode when |x| exceeds this
POLE_LENGTH = 1.0  # metres drawn (gymnasium's pole is 2 * 0.5 m)
FRAME_MS = 20  # CartPole's physics step is 0.02 s, so the GIF plays in real time


def episode(policy, seed: int = 0, max_steps: int = 500) -> np.ndarray:
    """Observations of one greedy episode in the jax env, the initial one first: (steps + 1, 4)."""
    import jax
    import jax.numpy as jnp

    from .core import env

    advance = jax.jit(env.advance)
    state = env.reset(jax.random.key(seed), 1)[1]
    observations = [np.asarray(env.observe(state))[0]]
    for _ in range(max_steps):
        state, terminated, truncated = advance(state, jnp.asarray([policy(observations[-1])], jnp.int32))
        observations.append(np.asarray(env.observe(state))[0])
        if bool(terminated[0] | truncated[0]):
            break
    return np.stack(observations)


def draw(obs: np.ndarray, step: int, total: float) -> Image.Image:
    """One frame: track, cart at x, pole at angle theta (radians from upright, clockwise positive)."""
    img = Image.new("RGB", (WIDTH, HEIGHT), "white")
    d = ImageDraw.Draw(img)
    scale = WIDTH / (2 * X_LIMIT * 1.1)
    track_y = HEIGHT - 60
    d.line([(0, track_y), (WIDTH, track_y)], fill="black", width=1)
    for edge in (-X_LIMIT, X_LIMIT):  # where the episode fails
        ex = WIDTH / 2 + edge * scale
        d.line([(ex, track_y - 6), (ex, track_y + 6)], fill=(200, 40, 40), width=2)
    x, theta = float(obs[0]), float(obs[2])
    cx = WIDTH / 2 + x * scale
    cart_w, cart_h = 50, 24
    d.rectangle([cx - cart_w / 2, track_y - cart_h, cx + cart_w / 2, track_y], fill=(40, 40, 40))
    axle = (cx, track_y - cart_h)
    tip = (axle[0] + POLE_LENGTH * scale * np.sin(theta), axle[1] - POLE_LENGTH * scale * np.cos(theta))
    d.line([axle, tip], fill=(204, 153, 102), width=8)
    d.ellipse([axle[0] - 4, axle[1] - 4, axle[0] + 4, axle[1] + 4], fill=(127, 127, 204))
    d.text((10, 10), f"step {step}   return {total:.0f}", fill="black")
    return img


def render_gif(policy, out: str | Path, seed: int = 0, max_steps: int = 500) -> int:
    """Write the episode's GIF atomically; return its frame count (steps taken + the initial frame)."""
    observations = episode(policy, seed, max_steps)
    # The reward is 1 per step taken, so the return after step t is t.
    frames = [draw(obs, t, float(t)) for t, obs in enumerate(observations)]
    out = Path(out)
    with replacing(out) as tmp:
        frames[0].save(tmp, save_all=True, append_images=frames[1:], duration=FRAME_MS, loop=0)
    return len(frames)
