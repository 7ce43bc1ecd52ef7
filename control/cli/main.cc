// aftrctl: the operator CLI over aftrd's gRPC API (`aftrctl --help`).
#include <iostream>
#include <string>
#include <vector>

#include "control/cli/commands.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return aftr::cli::Main(args, std::cout, std::cerr);
}
