// A plain-text table with aligned columns, as aftrctl prints lists: a header row, two spaces
// between columns, numbers right-aligned, no trailing blanks.
#ifndef AFTR_CONTROL_CLI_TABLE_H_
#define AFTR_CONTROL_CLI_TABLE_H_

#include <string>
#include <vector>

namespace aftr::cli {

class Table {
 public:
  enum class Align { kLeft, kRight };
  struct Column {
    std::string header;
    Align align = Align::kLeft;
  };

  explicit Table(std::vector<Column> columns) : columns_(std::move(columns)) {}

  // Rows shorter than the header are padded with empty cells; extra cells are dropped.
  void AddRow(std::vector<std::string> cells);
  size_t rows() const { return rows_.size(); }

  // Header and rows, each line ending in '\n'. Widths are counted in bytes: every cell aftrctl
  // prints is ASCII (addresses, numbers, names).
  std::string Render() const;

 private:
  std::vector<Column> columns_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace aftr::cli

#endif  // AFTR_CONTROL_CLI_TABLE_H_
