// Printing a job's result: a human table, CSV (one line per strategy, every aggregate) or
// JSON (the configuration, every aggregate, phase times). Every statistic states its row count.
#pragma once

#include <string>

#include "ncsparse/engine.hpp"

namespace ncsparse {

enum class Format { Table, Csv, Json };

Format parse_format(const std::string& text);
// A number for the table: printf format, "-" for NaN.
std::string format_number(double x, const char* fmt = "%.3g");
// Bytes as "12.3 GiB", for messages.
std::string format_gib(double bytes);
// JSON text of a number (17 significant digits; null when not finite) and of a string (quoted,
// with quotes, backslashes and control characters escaped): every JSON ncsparse writes.
std::string json_number(double x);
std::string json_string(const std::string& s);
std::string format_result(const JobResult& result, Format format);

// Writes the job's warnings to stderr, one line each as "ncsparse: warning: <prefix><line>", on
// rank 0 only (every rank holds the same warnings).
void print_warnings(int rank, const JobResult& result, const std::string& prefix = "");

}  // namespace ncsparse
