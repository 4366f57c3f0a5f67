"""Geometry for the SVG charts drawn on the server (readable without JavaScript)."""

import math

WIDTH, HEIGHT = 560, 260
LEFT, RIGHT, TOP, BOTTOM = 52, 16, 28, 40


def nice_ticks(value: float, most: int = 5) -> list[float]:
    """0 and up to `most` round steps (1, 2 or 5 times a power of ten) whose last one is at least `value`."""
    value = max(value, 1e-9)
    power = 10 ** math.floor(math.log10(value / most))
    for multiple in (1, 2, 5, 10, 20, 50):
        step = multiple * power
        if step * most >= value:
            break
    count = math.ceil(value / step - 1e-9)
    return [round(step * i, 10) for i in range(count + 1)]


def offload_chart(curve: list[dict]) -> dict:
    """Tokens/s against GPU offload %: a polyline, its points, axis ticks, and where the card's memory ends."""
    ticks = nice_ticks(max((p["tokens_per_s"] for p in curve), default=1) * 1.05)
    top = ticks[-1]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(share):
        return round(LEFT + share * plot_w, 1)

    def y(value):
        return round(TOP + plot_h * (1 - value / top), 1)

    points = [{"x": x(p["offload"]), "y": y(p["tokens_per_s"]), "fits": p["fits"],
               "label": f"{round(100 * p['offload'])}%: {p['tokens_per_s']:.1f} tok/s", **p} for p in curve]
    fitting = [p for p in points if p["fits"]]
    limit_x = max((p["x"] for p in fitting), default=None)
    return {
        "width": WIDTH, "height": HEIGHT, "left": LEFT, "right": WIDTH - RIGHT, "top": TOP,
        "bottom": HEIGHT - BOTTOM,
        "polyline": " ".join(f"{p['x']},{p['y']}" for p in points),
        "points": points,
        "x_ticks": [{"x": x(s / 100), "label": f"{s}%"} for s in range(0, 101, 25)],
        "y_ticks": [{"y": y(t), "label": f"{t:g}"} for t in ticks],
        "limit_x": limit_x,
        "label_y": HEIGHT - 6,
    }
