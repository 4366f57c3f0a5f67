"""Geometry for the SVG charts drawn on the server (readable without JavaScript)."""

WIDTH, HEIGHT = 560, 260
LEFT, RIGHT, TOP, BOTTOM = 52, 16, 16, 40


def _nice_ceiling(value: float) -> float:
    """1, 2, 2.5 or 5 times a power of ten, at least `value`."""
    if value <= 0:
        return 1.0
    power = 10 ** len(str(int(value))) / 10
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power


def offload_chart(curve: list[dict]) -> dict:
    """Tokens/s against GPU offload %: a polyline, its points, axis ticks, and where the card's memory ends."""
    top = _nice_ceiling(max((p["tokens_per_s"] for p in curve), default=1) * 1.05)
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
        "y_ticks": [{"y": y(top * i / 4), "label": f"{top * i / 4:g}"} for i in range(5)],
        "limit_x": limit_x,
        "label_y": HEIGHT - 6,
    }
