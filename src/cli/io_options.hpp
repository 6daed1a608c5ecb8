// Options shared by the commands that read HDF5 inputs (attend, run --input).
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "io/h5_source.hpp"

namespace ncsparse::cli {

// --input FILE, --q/--k/--v DATASET (cmd_attend.cpp).
void add_input_options(CLI::App& cmd, std::string& input, io::InputNames& names);

}  // namespace ncsparse::cli
