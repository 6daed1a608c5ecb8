// `ncsparse report`: the summary table of a study's results file, one line per
// configuration x strategy, as a table, CSV or Markdown. Serial; reads only.
#pragma once

#include <string>

namespace ncsparse::study {

enum class ReportFormat { Table, Csv, Markdown };

ReportFormat parse_report_format(const std::string& text);  // usage Error naming --format
std::string format_study_results(const std::string& path, ReportFormat format);

}  // namespace ncsparse::study
