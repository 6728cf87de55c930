// curves_svg.cpp — the panel grid of curves_svg.h.
#include "post/curves_svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>

#include "core/error.h"

namespace dsref {

namespace {
std::string num(double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.4g", v);
    return b;
}
std::string xml_escape(const std::string& s) {
    std::string o;
    for (char c : s) o += c == '<' ? "&lt;" : c == '>' ? "&gt;" : c == '&' ? "&amp;" : std::string(1, c);
    return o;
}
}  // namespace

void write_curves_svg(const std::string& path, const std::string& heading, const std::vector<CurveSeries>& series,
                      int cols) {
    if (cols < 1) fail("curves svg: cols must be >= 1");
    std::ofstream f(path);
    if (!f) fail(path, ": cannot write the plot");
    const double PW = 300, PH = 200, top = 30, m = 36;  // panel size, heading band, inner margin
    const int rows = ((int)series.size() + cols - 1) / cols;
    const double W = PW * cols, H = top + PH * rows;
    f << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
      << "\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      << "<text x=\"" << W / 2 << "\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">" << xml_escape(heading)
      << "</text>\n";
    for (size_t k = 0; k < series.size(); k++) {
        const CurveSeries& s = series[k];
        const double ox = PW * (double)(k % cols), oy = top + PH * (double)(k / cols);
        double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
        for (size_t i = 0; i < s.x.size() && i < s.y.size(); i++) {
            if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
            xlo = std::min(xlo, s.x[i]), xhi = std::max(xhi, s.x[i]);
            ylo = std::min(ylo, s.y[i]), yhi = std::max(yhi, s.y[i]);
        }
        const bool empty = !(xlo <= xhi);
        if (empty) xlo = 0, xhi = 1, ylo = 0, yhi = 1;
        if (xhi - xlo < 1e-12) xhi = xlo + 1;
        if (yhi - ylo < 1e-12) yhi = ylo + 1;
        const double x0 = ox + m, x1 = ox + PW - 12, y0 = oy + PH - 24, y1 = oy + 22;
        f << "<text x=\"" << ox + PW / 2 << "\" y=\"" << oy + 14 << "\" text-anchor=\"middle\">" << xml_escape(s.title)
          << "</text>\n"
          << "<rect x=\"" << x0 << "\" y=\"" << y1 << "\" width=\"" << x1 - x0 << "\" height=\"" << y0 - y1
          << "\" fill=\"none\" stroke=\"#999\"/>\n"
          << "<text x=\"" << x0 - 3 << "\" y=\"" << y1 + 8 << "\" text-anchor=\"end\">" << num(yhi) << "</text>\n"
          << "<text x=\"" << x0 - 3 << "\" y=\"" << y0 << "\" text-anchor=\"end\">" << num(ylo) << "</text>\n"
          << "<text x=\"" << x0 << "\" y=\"" << y0 + 13 << "\">" << num(xlo) << "</text>\n"
          << "<text x=\"" << x1 << "\" y=\"" << y0 + 13 << "\" text-anchor=\"end\">" << num(xhi) << "</text>\n";
        if (empty) continue;
        f << "<polyline fill=\"none\" stroke=\"" << (s.smooth > 1 ? "#b8cfe3" : "steelblue")
          << "\" stroke-width=\"1.5\" points=\"";
        int n_pts = 0;
        for (size_t i = 0; i < s.x.size() && i < s.y.size(); i++) {
            if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
            f << num(x0 + (x1 - x0) * (s.x[i] - xlo) / (xhi - xlo)) << ","
              << num(y0 - (y0 - y1) * (s.y[i] - ylo) / (yhi - ylo)) << " ";
            n_pts++;
        }
        f << "\"/>\n";
        if (s.smooth > 1) {  // trailing mean of the last `smooth` finite points
            std::vector<double> xs, ys;
            for (size_t i = 0; i < s.x.size() && i < s.y.size(); i++)
                if (std::isfinite(s.x[i]) && std::isfinite(s.y[i])) xs.push_back(s.x[i]), ys.push_back(s.y[i]);
            f << "<polyline fill=\"none\" stroke=\"#1f4e79\" stroke-width=\"2\" points=\"";
            double acc = 0;
            for (size_t i = 0; i < ys.size(); i++) {
                acc += ys[i];
                if (i >= (size_t)s.smooth) acc -= ys[i - s.smooth];
                const double m_i = acc / (double)std::min(i + 1, (size_t)s.smooth);
                f << num(x0 + (x1 - x0) * (xs[i] - xlo) / (xhi - xlo)) << ","
                  << num(y0 - (y0 - y1) * (m_i - ylo) / (yhi - ylo)) << " ";
            }
            f << "\"/>\n";
        }
        if (n_pts < 20)  // sparse series (held-out evaluations): mark the points
            for (size_t i = 0; i < s.x.size() && i < s.y.size(); i++)
                if (std::isfinite(s.x[i]) && std::isfinite(s.y[i]))
                    f << "<circle r=\"2.5\" fill=\"steelblue\" cx=\"" << num(x0 + (x1 - x0) * (s.x[i] - xlo) / (xhi - xlo))
                      << "\" cy=\"" << num(y0 - (y0 - y1) * (s.y[i] - ylo) / (yhi - ylo)) << "\"/>\n";
    }
    f << "</svg>\n";
    if (!f) fail(path, ": write failed");
}

}  // namespace dsref
