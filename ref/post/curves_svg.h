// curves_svg.h — training curves as one plain SVG file: a grid of small panels, one per series, each a
// polyline of (x, y) points with its title and its y range; NaN points are skipped (a series measured
// only at some steps, e.g. held-out accuracy). Written by hand, no plotting library.
#pragma once
#include <string>
#include <vector>

namespace dsref {

struct CurveSeries {
    std::string title;
    std::vector<double> x, y;  // [n] each
    int smooth = 0;            // > 1: also a trailing moving average over this many points (the raw line pales)
};

// cols panels per row; fails naming the path when the file cannot be written.
void write_curves_svg(const std::string& path, const std::string& heading, const std::vector<CurveSeries>& series,
                      int cols = 3);

}  // namespace dsref
