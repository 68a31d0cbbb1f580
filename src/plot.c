/*
 * plot.c — figures with cairo, written as PNG and SVG from one drawing
 * routine: side-by-side scatter panels of analytic (x) against Monte Carlo
 * (y), each series with its own marker, its least-squares line through
 * the origin and, in the legend, that slope and the free line's (nm_ls_fit),
 * and the dashed diagonal y = x for reference (the paper's Fig 2 layout).
 */
#include "internal.h"

#include <cairo-svg.h>
#include <cairo.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define PANEL_W 480.0
#define PANEL_H 440.0
#define MARGIN_L 88.0
#define MARGIN_B 55.0
#define MARGIN_T 40.0
#define MARGIN_R 34.0

static const double colors[4][3] = {{0.12, 0.47, 0.71}, {0.84, 0.15, 0.16}, {0.17, 0.63, 0.17}, {0.58, 0.40, 0.74}};

static void marker(cairo_t *cr, double x, double y, int kind)
{
    if (kind == 1) { /* cross */
        cairo_move_to(cr, x - 3, y - 3), cairo_line_to(cr, x + 3, y + 3);
        cairo_move_to(cr, x - 3, y + 3), cairo_line_to(cr, x + 3, y - 3);
        cairo_stroke(cr);
    } else { /* circle */
        cairo_new_sub_path(cr);
        cairo_arc(cr, x, y, 2.6, 0, 2 * M_PI);
        cairo_stroke(cr);
    }
}

static void text(cairo_t *cr, double x, double y, const char *s, double align, double size)
{
    cairo_set_font_size(cr, size);
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    cairo_move_to(cr, x - align * e.width, y);
    cairo_show_text(cr, s);
}

/* Ticks at round values (1, 2 or 5 × 10^k apart) over [lo, hi], written with as many digits as their
 * spacing needs: under 1e-4 noise a mean spans 1e-4. */
typedef struct {
    double step;
    int sci, dec, sig;
} ticks;

static ticks ticks_of(double lo, double hi)
{
    double raw = (hi - lo) / 4, p10 = pow(10, floor(log10(raw))), f = raw / p10;
    double step = (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * p10, mag = fmax(fabs(lo), fabs(hi));
    ticks t = {step, mag < 1e-3 || mag >= 1e6, (int)fmax(0, -floor(log10(step) + 1e-9)),
               (int)fmax(0, floor(log10(mag)) - floor(log10(step) + 1e-9))};
    return t;
}

static void tick_text(const ticks *t, double v, char *buf, size_t size)
{
    if (t->sci) snprintf(buf, size, "%.*e", t->sig, v);
    else snprintf(buf, size, "%.*f", t->dec, v);
}

/* The axis labels: x centred under the frame (x0..x1), y rotated at the left edge ox. */
static void axis_labels(cairo_t *cr, double ox, double x0, double x1, double y0, double y1, const char *xlabel, const char *ylabel)
{
    text(cr, (x0 + x1) / 2, PANEL_H - 12, xlabel, 0.5, 13);
    cairo_save(cr);
    cairo_move_to(cr, ox + 14, (y0 + y1) / 2);
    cairo_rotate(cr, -M_PI / 2);
    cairo_set_font_size(cr, 13);
    cairo_text_extents_t e;
    cairo_text_extents(cr, ylabel, &e);
    cairo_rel_move_to(cr, -e.width / 2, 0);
    cairo_show_text(cr, ylabel);
    cairo_restore(cr);
}

static void draw_panel(cairo_t *cr, double ox, const nm_plot_panel *p)
{
    double lo = INFINITY, hi = -INFINITY;
    for (int s = 0; s < p->nseries; s++)
        for (int64_t i = 0; i < p->series[s].n; i++) {
            double x = p->series[s].x[i * p->series[s].stride], y = p->series[s].y[i * p->series[s].stride];
            if (isfinite(x) && isfinite(y)) lo = fmin(lo, fmin(x, y)), hi = fmax(hi, fmax(x, y));
        }
    if (!(hi > lo)) hi = lo + 1, lo -= 1;
    double pad = 0.04 * (hi - lo);
    lo -= pad, hi += pad;
    double x0 = ox + MARGIN_L, x1 = ox + PANEL_W - MARGIN_R, y0 = PANEL_H - MARGIN_B, y1 = MARGIN_T;
#define PX(v) (x0 + ((v) - lo) / (hi - lo) * (x1 - x0))
#define PY(v) (y0 - ((v) - lo) / (hi - lo) * (y0 - y1))
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, x0, y1, x1 - x0, y0 - y1);
    cairo_stroke(cr);
    char buf[64];
    ticks tk = ticks_of(lo, hi);
    for (double v = ceil(lo / tk.step) * tk.step; v <= hi; v += tk.step) {
        if (fabs(v) < 1e-9 * tk.step) v = 0;
        tick_text(&tk, v, buf, sizeof buf);
        cairo_move_to(cr, PX(v), y0), cairo_line_to(cr, PX(v), y0 + 5);
        cairo_move_to(cr, x0, PY(v)), cairo_line_to(cr, x0 - 5, PY(v));
        cairo_stroke(cr);
        text(cr, PX(v), y0 + 18, buf, 0.5, 11);
        text(cr, x0 - 8, PY(v) + 4, buf, 1.0, 11);
    }
    axis_labels(cr, ox, x0, x1, y0, y1, p->xlabel, p->ylabel);
    text(cr, (x0 + x1) / 2, 24, p->title, 0.5, 14);
    /* y = x */
    cairo_set_source_rgb(cr, 0.5, 0.5, 0.5);
    double dash[2] = {4, 4};
    cairo_set_dash(cr, dash, 2, 0);
    cairo_move_to(cr, PX(lo), PY(lo)), cairo_line_to(cr, PX(hi), PY(hi));
    cairo_stroke(cr);
    cairo_set_dash(cr, NULL, 0, 0);
    cairo_rectangle(cr, x0, y1, x1 - x0, y0 - y1);
    cairo_clip(cr);
    nm_ls_line fit[4];
    for (int s = 0; s < p->nseries; s++) {
        const nm_plot_series *se = &p->series[s];
        fit[s] = nm_ls_fit(se->x, se->y, se->n, se->stride);
        cairo_set_source_rgb(cr, colors[s % 4][0], colors[s % 4][1], colors[s % 4][2]);
        for (int64_t i = 0; i < se->n; i++) marker(cr, PX(se->x[i * se->stride]), PY(se->y[i * se->stride]), se->marker);
        /* the least-squares line through the origin, y = b x, whose slope is the tightness (DESIGN §1.8) */
        double b = fit[s].slope;
        if (isfinite(b)) {
            cairo_set_line_width(cr, 1.6);
            cairo_move_to(cr, PX(lo), PY(b * lo)), cairo_line_to(cr, PX(hi), PY(b * hi));
            cairo_stroke(cr);
            cairo_set_line_width(cr, 1);
        }
    }
    cairo_reset_clip(cr);
    for (int s = 0; s < p->nseries; s++) { /* legend */
        const nm_plot_series *se = &p->series[s];
        double ly = y1 + 18 + 18 * s;
        cairo_set_source_rgb(cr, colors[s % 4][0], colors[s % 4][1], colors[s % 4][2]);
        marker(cr, x0 + 14, ly - 4, se->marker);
        snprintf(buf, sizeof buf, "%s: slope %.4f (free line %.3g)", se->label, fit[s].slope, fit[s].free_slope);
        cairo_set_source_rgb(cr, 0, 0, 0);
        text(cr, x0 + 24, ly, buf, 0, 12);
    }
#undef PX
#undef PY
}

/* A white page in the figures' font, black ink, and the title (may be NULL) at the top left. */
static void blank(cairo_t *cr, const char *title)
{
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_source_rgb(cr, 0, 0, 0);
    if (title) text(cr, 16, 26, title, 0, 15);
}

static void draw(cairo_t *cr, int npanels, const nm_plot_panel *panels)
{
    blank(cr, NULL);
    for (int i = 0; i < npanels; i++) draw_panel(cr, i * PANEL_W, &panels[i]);
}

static cairo_status_t to_file(void *closure, const unsigned char *data, unsigned int len)
{
    return fwrite(data, 1, len, closure) == len ? CAIRO_STATUS_SUCCESS : CAIRO_STATUS_WRITE_ERROR;
}

/* Commits the figure's file, or removes it when cairo failed. */
static nm_status finish(nm_ctx *ctx, nm_afile *af, cairo_status_t cs)
{
    if (cs == CAIRO_STATUS_SUCCESS) return nm_afile_commit(ctx, af);
    nm_afile_abort(af);
    return nm_fail(ctx, NM_ERR_IO, "%s: %s", af->path, cairo_status_to_string(cs));
}

/* Draws the figure into PNG and/or SVG files (either may be NULL), each written whole or not at all. */
static nm_status write_figure(nm_ctx *ctx, const char *png, const char *svg, double w, double h, void (*fig)(cairo_t *, const void *),
                              const void *arg)
{
    nm_afile af;
    nm_status st = NM_OK;
    if (png && (st = nm_afile_open(ctx, png, &af)) == NM_OK) {
        cairo_surface_t *sf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, (int)w, (int)h);
        cairo_t *cr = cairo_create(sf);
        fig(cr, arg);
        cairo_destroy(cr);
        cairo_status_t cs = cairo_surface_write_to_png_stream(sf, to_file, af.f);
        cairo_surface_destroy(sf);
        st = finish(ctx, &af, cs);
    }
    if (st == NM_OK && svg && (st = nm_afile_open(ctx, svg, &af)) == NM_OK) {
        cairo_surface_t *sf = cairo_svg_surface_create_for_stream(to_file, af.f, w, h);
        cairo_t *cr = cairo_create(sf);
        fig(cr, arg);
        cairo_destroy(cr);
        cairo_surface_finish(sf);
        cairo_status_t cs = cairo_surface_status(sf);
        cairo_surface_destroy(sf);
        st = finish(ctx, &af, cs);
    }
    return st;
}

typedef struct {
    int npanels;
    const nm_plot_panel *panels;
} scatter_fig;

static void draw_scatter(cairo_t *cr, const void *arg)
{
    const scatter_fig *f = arg;
    draw(cr, f->npanels, f->panels);
}

nm_status nm_plot_scatter(nm_ctx *ctx, const char *png, const char *svg, int npanels, const nm_plot_panel *panels)
{
    if (!ctx || npanels < 1 || npanels > 4 || !panels) return nm_fail(ctx, NM_ERR_ARG, "1 to 4 panels");
    for (int i = 0; i < npanels; i++) {
        if (panels[i].nseries < 0 || panels[i].nseries > 4) return nm_fail(ctx, NM_ERR_ARG, "0 to 4 series a panel");
        for (int s = 0; s < panels[i].nseries; s++)
            if (panels[i].series[s].n < 2) return nm_fail(ctx, NM_ERR_ARG, "a series needs at least 2 points");
    }
    scatter_fig f = {npanels, panels};
    return write_figure(ctx, png, svg, PANEL_W * npanels, PANEL_H, draw_scatter, &f);
}

/* ---------------------------------------------------------------- heat maps over images */

#define HEAT_CELL 168.0 /* pixels per image side */
#define HEAT_GAP 26.0
#define HEAT_COLS 5
#define HEAT_BAR 92.0

/* Blue → white → red (a diverging map) at t ∈ [0, 1]. */
/* ---------------------------------------------------------------- curves */

#define CURVES_MAX 12
static const double curve_colors[CURVES_MAX][3] = {{0.12, 0.47, 0.71}, {0.84, 0.15, 0.16}, {0.17, 0.63, 0.17}, {0.58, 0.40, 0.74},
                                                   {1.00, 0.50, 0.05}, {0.55, 0.34, 0.29}, {0.89, 0.47, 0.76}, {0.50, 0.50, 0.50},
                                                   {0.74, 0.74, 0.13}, {0.09, 0.75, 0.81}, {0.00, 0.00, 0.00}, {0.00, 0.40, 0.40}};

typedef struct {
    const char *title, *xlabel, *ylabel;
    int n;
    const nm_plot_curve *c;
} curves_fig;

static void draw_curves(cairo_t *cr, const void *arg)
{
    const curves_fig *f = arg;
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    for (int k = 0; k < f->n; k++)
        for (int64_t i = 0; i < f->c[k].n; i++)
            if (isfinite(f->c[k].x[i]) && isfinite(f->c[k].y[i]))
                xlo = fmin(xlo, f->c[k].x[i]), xhi = fmax(xhi, f->c[k].x[i]), ylo = fmin(ylo, f->c[k].y[i]), yhi = fmax(yhi, f->c[k].y[i]);
    if (!(xhi > xlo)) xhi = xlo + 1, xlo -= 1;
    if (!(yhi > ylo)) yhi = ylo + 1, ylo -= 1;
    double px = 0.03 * (xhi - xlo), py = 0.05 * (yhi - ylo);
    xlo -= px, xhi += px, ylo -= py, yhi += py;
    blank(cr, NULL);
    double W = 1.5 * PANEL_W, x0 = MARGIN_L, x1 = W - MARGIN_R, y0 = PANEL_H - MARGIN_B, y1 = MARGIN_T;
#define PX(v) (x0 + ((v) - xlo) / (xhi - xlo) * (x1 - x0))
#define PY(v) (y0 - ((v) - ylo) / (yhi - ylo) * (y0 - y1))
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, x0, y1, x1 - x0, y0 - y1);
    cairo_stroke(cr);
    char buf[64];
    ticks tx = ticks_of(xlo, xhi), ty = ticks_of(ylo, yhi);
    for (double v = ceil(xlo / tx.step) * tx.step; v <= xhi; v += tx.step) {
        if (fabs(v) < 1e-9 * tx.step) v = 0;
        tick_text(&tx, v, buf, sizeof buf);
        cairo_move_to(cr, PX(v), y0), cairo_line_to(cr, PX(v), y0 + 5);
        cairo_stroke(cr);
        text(cr, PX(v), y0 + 18, buf, 0.5, 11);
    }
    for (double v = ceil(ylo / ty.step) * ty.step; v <= yhi; v += ty.step) {
        if (fabs(v) < 1e-9 * ty.step) v = 0;
        tick_text(&ty, v, buf, sizeof buf);
        cairo_move_to(cr, x0, PY(v)), cairo_line_to(cr, x0 - 5, PY(v));
        cairo_stroke(cr);
        text(cr, x0 - 8, PY(v) + 4, buf, 1.0, 11);
    }
    axis_labels(cr, 0, x0, x1, y0, y1, f->xlabel, f->ylabel);
    if (f->title) text(cr, (x0 + x1) / 2, 24, f->title, 0.5, 14);
    for (int k = 0; k < f->n; k++) {
        const nm_plot_curve *c = &f->c[k];
        cairo_set_source_rgb(cr, curve_colors[k][0], curve_colors[k][1], curve_colors[k][2]);
        cairo_set_line_width(cr, 1.8);
        for (int64_t i = 0, pen = 0; i < c->n; i++) {
            if (!isfinite(c->x[i]) || !isfinite(c->y[i])) {
                pen = 0;
                continue;
            }
            if (pen) cairo_line_to(cr, PX(c->x[i]), PY(c->y[i]));
            else cairo_move_to(cr, PX(c->x[i]), PY(c->y[i])), pen = 1;
        }
        cairo_stroke(cr);
        cairo_set_line_width(cr, 1);
        for (int64_t i = 0; i < c->n; i++)
            if (isfinite(c->x[i]) && isfinite(c->y[i])) marker(cr, PX(c->x[i]), PY(c->y[i]), k % 2);
        double ly = y0 - 14 - 18 * (f->n - 1 - k), lx = x0 + 14; /* legend, bottom left (falling curves leave it free) */
        cairo_move_to(cr, lx, ly - 4), cairo_line_to(cr, lx + 20, ly - 4);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        text(cr, lx + 26, ly, c->label ? c->label : "", 0, 12);
    }
#undef PX
#undef PY
}

nm_status nm_plot_curves(nm_ctx *ctx, const char *png, const char *svg, const char *title, const char *xlabel, const char *ylabel,
                         int ncurves, const nm_plot_curve *curves)
{
    if (!ctx || (ncurves > 0 && !curves) || !xlabel || !ylabel) return nm_fail(ctx, NM_ERR_ARG, "NULL argument");
    if (ncurves < 1 || ncurves > CURVES_MAX) return nm_fail(ctx, NM_ERR_ARG, "a figure holds 1 to %d curves, not %d", CURVES_MAX, ncurves);
    for (int k = 0; k < ncurves; k++)
        if (curves[k].n < 0 || (curves[k].n > 0 && (!curves[k].x || !curves[k].y))) return nm_fail(ctx, NM_ERR_ARG, "curve %d has no points", k);
    curves_fig f = {title, xlabel, ylabel, ncurves, curves};
    return write_figure(ctx, png, svg, 1.5 * PANEL_W, PANEL_H, draw_curves, &f);
}

static void heat_color(double t, double *rgb)
{
    static const double lo[3] = {0.23, 0.30, 0.75}, mid[3] = {0.87, 0.87, 0.87}, hi[3] = {0.71, 0.02, 0.15};
    t = fmin(1, fmax(0, t));
    for (int k = 0; k < 3; k++) rgb[k] = t < 0.5 ? lo[k] + (mid[k] - lo[k]) * 2 * t : mid[k] + (hi[k] - mid[k]) * (2 * t - 1);
}

/* An H×W image at (ox, oy), px per pixel: grey over its own range, or with
 * scale > 0 diverging blue → grey → red over [−scale, scale]. */
static void draw_pixels(cairo_t *cr, double ox, double oy, double px, const double *image, int64_t H, int64_t W, double scale)
{
    double lo = INFINITY, hi = -INFINITY;
    for (int64_t k = 0; k < H * W; k++) lo = fmin(lo, image[k]), hi = fmax(hi, image[k]);
    if (!(hi > lo)) hi = lo + 1;
    /* One image at the drawn size, each pixel a block: an SVG embeds it as one picture (not a rectangle per
     * pixel: megabytes) that no viewer smooths. */
    int sw = (int)ceil(W * px), sh = (int)ceil(H * px);
    cairo_surface_t *img = cairo_image_surface_create(CAIRO_FORMAT_RGB24, sw, sh);
    if (cairo_surface_status(img) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(img);
        return;
    }
    cairo_surface_flush(img);
    unsigned char *data = cairo_image_surface_get_data(img);
    int stride = cairo_image_surface_get_stride(img);
    for (int yy = 0; yy < sh; yy++)
        for (int xx = 0; xx < sw; xx++) {
            int64_t y = (int64_t)(yy / px), x = (int64_t)(xx / px);
            double v = image[(y < H ? y : H - 1) * W + (x < W ? x : W - 1)], rgb[3];
            if (scale > 0) heat_color(0.5 + 0.5 * v / scale, rgb);
            else rgb[0] = rgb[1] = rgb[2] = (v - lo) / (hi - lo);
            uint32_t c = (uint32_t)lround(rgb[0] * 255) << 16 | (uint32_t)lround(rgb[1] * 255) << 8 | (uint32_t)lround(rgb[2] * 255);
            memcpy(data + (size_t)yy * (size_t)stride + 4 * (size_t)xx, &c, 4);
        }
    cairo_surface_mark_dirty(img);
    cairo_set_source_surface(cr, img, ox, oy);
    cairo_paint(cr);
    cairo_surface_destroy(img);
}

typedef struct {
    int n;
    const nm_plot_heat *h;
    double vmax;
    const char *title, *caption;
} heat_fig;

static void draw_heat(cairo_t *cr, const void *arg)
{
    const heat_fig *f = arg;
    blank(cr, f->title);
    for (int i = 0; i < f->n; i++) {
        const nm_plot_heat *h = &f->h[i];
        double ox = HEAT_GAP + (i % HEAT_COLS) * (HEAT_CELL + HEAT_GAP), oy = 60 + (i / HEAT_COLS) * (HEAT_CELL + 2 * HEAT_GAP);
        double px = HEAT_CELL / (double)(h->W > h->H ? h->W : h->H);
        draw_pixels(cr, ox, oy, px, h->image, h->H, h->W, 0);
        for (int64_t r = 0; r < h->P; r++)
            for (int64_t q = 0; q < h->Q; q++) {
                double v = h->map[r * h->Q + q], rgb[3];
                if (!isfinite(v)) continue;
                heat_color(v / f->vmax, rgb);
                cairo_set_source_rgba(cr, rgb[0], rgb[1], rgb[2], 0.62);
                cairo_rectangle(cr, ox + (h->c0 + q * h->step) * px, oy + (h->r0 + r * h->step) * px, h->step * px, h->step * px);
                cairo_fill(cr);
            }
        cairo_set_source_rgb(cr, 0, 0, 0);
        text(cr, ox + HEAT_CELL / 2, oy + HEAT_CELL + 17, h->title ? h->title : "", 0.5, 12);
    }
    /* the colour bar */
    int rows = (f->n + HEAT_COLS - 1) / HEAT_COLS;
    double bx = HEAT_GAP + HEAT_COLS * (HEAT_CELL + HEAT_GAP) + 10, by = 60, bh = rows * (HEAT_CELL + 2 * HEAT_GAP) - 2 * HEAT_GAP;
    for (int k = 0; k < 100; k++) {
        double rgb[3];
        heat_color(1 - k / 99.0, rgb);
        cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
        cairo_rectangle(cr, bx, by + k * bh / 100, 18, bh / 100 + 0.5);
        cairo_fill(cr);
    }
    cairo_set_source_rgb(cr, 0, 0, 0);
    char buf[32];
    for (int k = 0; k <= 4; k++) {
        snprintf(buf, sizeof buf, "%.2g", f->vmax * (1 - k / 4.0));
        text(cr, bx + 24, by + k * bh / 4 + 4, buf, 0, 11);
    }
    text(cr, 16, 60 + rows * (HEAT_CELL + 2 * HEAT_GAP) + 4, f->caption ? f->caption : "", 0, 12);
}

nm_status nm_plot_heatmaps(nm_ctx *ctx, const char *png, const char *svg, int n, const nm_plot_heat *maps, double vmax, const char *title,
                           const char *caption)
{
    if (!ctx || n < 1 || n > 20 || !maps) return nm_fail(ctx, NM_ERR_ARG, "1 to 20 heat maps");
    if (!(vmax > 0) || !isfinite(vmax)) return nm_fail(ctx, NM_ERR_ARG, "the colour scale's maximum must be finite and > 0");
    for (int i = 0; i < n; i++)
        if (!maps[i].image || !maps[i].map || maps[i].H < 1 || maps[i].W < 1 || maps[i].P < 1 || maps[i].Q < 1 || !(maps[i].step > 0))
            return nm_fail(ctx, NM_ERR_ARG, "heat map %d: an image and a map of positive sizes and step", i);
    heat_fig f = {n, maps, vmax, title ? title : "", caption};
    int rows = (n + HEAT_COLS - 1) / HEAT_COLS;
    return write_figure(ctx, png, svg, HEAT_GAP + HEAT_COLS * (HEAT_CELL + HEAT_GAP) + HEAT_BAR, 60 + rows * (HEAT_CELL + 2 * HEAT_GAP) + 20,
                        draw_heat, &f);
}

/* ---------------------------------------------------------------- image grids (the attacks' Fig 4 and Fig 5) */

#define GRID_CELL 112.0
#define GRID_GAP 18.0

typedef struct {
    int n, cols;
    const nm_plot_image *im;
    const char *title, *caption;
} grid_fig;

static void draw_grid(cairo_t *cr, const void *arg)
{
    const grid_fig *f = arg;
    blank(cr, f->title);
    for (int i = 0; i < f->n; i++) {
        const nm_plot_image *m = &f->im[i];
        if (!m->pixels) continue;
        double ox = GRID_GAP + (i % f->cols) * (GRID_CELL + GRID_GAP), oy = 48 + (i / f->cols) * (GRID_CELL + 2 * GRID_GAP);
        draw_pixels(cr, ox, oy, GRID_CELL / (double)(m->W > m->H ? m->W : m->H), m->pixels, m->H, m->W, m->scale);
        cairo_set_source_rgb(cr, 0, 0, 0);
        text(cr, ox + GRID_CELL / 2, oy + GRID_CELL + 14, m->title ? m->title : "", 0.5, 11);
    }
    int rows = (f->n + f->cols - 1) / f->cols;
    text(cr, 16, 48 + rows * (GRID_CELL + 2 * GRID_GAP) + 4, f->caption ? f->caption : "", 0, 12);
}

nm_status nm_plot_images(nm_ctx *ctx, const char *png, const char *svg, int n, int cols, const nm_plot_image *images, const char *title,
                         const char *caption)
{
    if (!ctx || n < 1 || n > 400 || cols < 1 || cols > 20 || !images) return nm_fail(ctx, NM_ERR_ARG, "1 to 400 images in 1 to 20 columns");
    for (int i = 0; i < n; i++) {
        const nm_plot_image *m = &images[i];
        if (m->pixels && (m->H < 1 || m->W < 1 || !(m->scale >= 0) || !nm_all_finite_f64(m->pixels, m->H * m->W)))
            return nm_fail(ctx, NM_ERR_ARG, "image %d: positive sizes, finite pixels and a scale >= 0", i);
    }
    grid_fig f = {n, cols, images, title ? title : "", caption};
    int rows = (n + cols - 1) / cols;
    return write_figure(ctx, png, svg, GRID_GAP + cols * (GRID_CELL + GRID_GAP), 48 + rows * (GRID_CELL + 2 * GRID_GAP) + 20, draw_grid, &f);
}
