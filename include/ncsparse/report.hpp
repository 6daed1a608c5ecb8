// Printing a job's result: a human table, CSV (one line per strategy, every aggregate) or
// JSON (the configuration, every aggregate, phase times). Every statistic states its row count.
#pragma once

#include <string>

#include "ncsparse/engine.hpp"

namespace ncsparse {

enum class Format { Table, Csv, Json };

Format parse_format(const std::string& text);
std::string format_result(const JobResult& result, Format format);

}  // namespace ncsparse
