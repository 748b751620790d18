"""Tiny server-side SVG line charts: no chart library, no script needed to draw them."""
from markupsafe import Markup

WIDTH, HEIGHT, PAD = 240, 60, 4


def chart(points, key, window=15 * 60):
    """A polyline of ``points[i][key]`` over the last ``window`` seconds of ``points``."""
    values = [(point["t"], point[key]) for point in points if point.get(key) is not None]
    if not values:
        return Markup(f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
                      f'aria-label="no data yet"><text x="{PAD}" y="{HEIGHT // 2}">no data yet</text></svg>')
    end = values[-1][0]
    start = end - window
    top = max(value for _, value in values)
    scale = top or 1.0   # all zero: a flat line at the bottom
    coords = [(PAD + (WIDTH - 2 * PAD) * (t - start) / window, HEIGHT - PAD - (HEIGHT - 2 * PAD) * value / scale)
              for t, value in values]
    latest = values[-1][1]
    # one interval so far is one point: a dot, as a line needs two
    mark = (f'<circle cx="{coords[0][0]:.1f}" cy="{coords[0][1]:.1f}" r="2" fill="currentColor"/>'
            if len(coords) == 1 else
            f'<polyline fill="none" stroke="currentColor" stroke-width="1.5" '
            f'points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in coords)}"/>')
    return Markup(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="latest {latest:g}, max {top:g}">'
        f'{mark}<text x="{WIDTH - PAD}" y="12" text-anchor="end">now {latest:g} · max {top:g}</text></svg>')
