// `ncsparse report`: the summary table of a study's results file, one line per
// configuration x strategy, as a table, CSV or Markdown. Serial; reads only.
#pragma once

#include <string>
#include <vector>

#include "study/records.hpp"

namespace ncsparse::study {

enum class ReportFormat { Table, Csv, Markdown };

ReportFormat parse_report_format(const std::string& text);  // usage Error naming --format
// Every configuration record of a study results file, in study order. Throws Error(65) when
// the file is not a study's results, Error(66) when it is missing. `configurations`, when
// given, receives the study's number of configurations (recorded or not).
std::vector<Record> read_results_records(const std::string& path, std::int64_t* configurations = nullptr);

std::string format_study_results(const std::string& path, ReportFormat format);

}  // namespace ncsparse::study
