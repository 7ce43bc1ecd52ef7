// Table rendering (see table.h).
#include "control/cli/table.h"

#include <algorithm>

namespace aftr::cli {

void Table::AddRow(std::vector<std::string> cells) {
  cells.resize(columns_.size());
  rows_.push_back(std::move(cells));
}

std::string Table::Render() const {
  std::vector<size_t> width(columns_.size());
  for (size_t c = 0; c < columns_.size(); ++c) {
    width[c] = columns_[c].header.size();
    for (const auto& row : rows_) width[c] = std::max(width[c], row[c].size());
  }
  std::string out;
  auto line = [&](const std::vector<std::string>& cells) {
    std::string text;
    for (size_t c = 0; c < cells.size(); ++c) {
      if (c > 0) text += "  ";
      size_t pad = width[c] - cells[c].size();
      if (columns_[c].align == Align::kRight) {
        text.append(pad, ' ');
        text += cells[c];
      } else {
        text += cells[c];
        text.append(pad, ' ');
      }
    }
    // Left-aligned last columns would leave padding at the end of the line.
    text.erase(text.find_last_not_of(' ') + 1);
    out += text;
    out += '\n';
  };
  std::vector<std::string> headers;
  for (const Column& c : columns_) headers.push_back(c.header);
  line(headers);
  for (const auto& row : rows_) line(row);
  return out;
}

}  // namespace aftr::cli
