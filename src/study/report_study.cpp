#include "study/report_study.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <vector>

#include "ncsparse/schema.hpp"
#include "study/records.hpp"

namespace ncsparse::study {
namespace {

// A column of the report: an aggregate of a statistic (record dataset stat_<metric>, field
// an index into kAggregates) or, with field -1, a strategy column (dataset <metric>).
struct Column {
  std::string name;
  std::string metric;
  int field;
};

// The table and Markdown show this digest; CSV every statistic and column of the schema.
std::vector<Column> columns(bool all) {
  if (!all) {
    return {{"k_mean", "k", 1},           {"kept_mass_mean", "kept_mass", 1}, {"attn_l1_mean", "attn_l1", 1},
            {"attn_linf_mean", "attn_linf", 1}, {"out_rel_mean", "out_rel", 1}, {"out_rel_p99", "out_rel", 5},
            {"out_rel_max", "out_rel", 6}, {"cert_out_mean", "cert_out", 1}, {"clamped_rows", "clamped_rows", -1}};
  }
  std::vector<Column> out;
  for (const RowStatistic& stat : row_statistics()) {
    for (std::size_t f = 1; f < kAggregateCount; ++f) {
      out.push_back({std::string(stat.name) + "_" + kAggregates[f], stat.name, static_cast<int>(f)});
    }
  }
  for (const StrategyColumn& c : strategy_columns()) out.push_back({c.name, c.name, -1});
  return out;
}

std::string num(double x, bool exact) {
  if (std::isnan(x)) return exact ? "nan" : "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, exact ? "%.17g" : "%.4g", x);
  return buf;
}

}  // namespace

ReportFormat parse_report_format(const std::string& text) {
  if (text == "table") return ReportFormat::Table;
  if (text == "csv") return ReportFormat::Csv;
  if (text == "markdown") return ReportFormat::Markdown;
  throw usage_error("--format: unknown format '" + text + "' (use table, csv or markdown)");
}

std::vector<Record> read_results_records(const std::string& path, std::int64_t* configurations) {
  h5::Handle file = h5::open_input_file(path, MPI_COMM_NULL);
  if (!h5::has_attr(file, "format") || h5::read_attr_string(file, "format") != kFormat ||
      !h5::exists(file, "configs")) {
    throw Error(kExitData, path + ": not an ncsparse study results file (make one with 'ncsparse study')");
  }
  h5::Handle configs(h5::check_id(H5Gopen2(file, "configs", H5P_DEFAULT), path + ": cannot open /configs", kExitData));
  H5G_info_t info{};
  h5::check(H5Gget_info(configs, &info), path + ": cannot list /configs", kExitData);
  std::vector<Record> recs;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    char name[64] = {0};
    h5::check(static_cast<herr_t>(
                  H5Lget_name_by_idx(configs, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name, H5P_DEFAULT) < 0
                      ? -1
                      : 0),
              path + ": cannot list /configs", kExitData);
    h5::Handle g(h5::check_id(H5Gopen2(configs, name, H5P_DEFAULT), path + ": cannot open a configuration", kExitData));
    recs.push_back(read_record_group(g));
  }
  std::sort(recs.begin(), recs.end(), [](const Record& a, const Record& b) { return a.ints.at("index") < b.ints.at("index"); });
  if (configurations) *configurations = h5::read_attr_int(file, "configurations");
  return recs;
}

std::string format_study_results(const std::string& path, ReportFormat format) {
  std::int64_t total = 0;
  const std::vector<Record> recs = read_results_records(path, &total);
  h5::Handle file = h5::open_input_file(path, MPI_COMM_NULL);

  const bool exact = format == ReportFormat::Csv;
  std::vector<std::string> head = {"n", "d", "model", "seed", "strategy"};
  const std::vector<Column> cols = columns(exact);
  for (const Column& c : cols) head.push_back(c.name);
  head.push_back("rows");
  std::vector<std::vector<std::string>> rows;
  for (const Record& r : recs) {
    std::vector<std::string> strategies;
    std::istringstream in(r.text.at("strategies"));
    for (std::string line; std::getline(in, line);) strategies.push_back(line);
    for (std::size_t s = 0; s < strategies.size(); ++s) {
      std::vector<std::string> row = {std::to_string(r.ints.at("n")), std::to_string(r.ints.at("d")), r.text.at("model"),
                                      std::to_string(r.ints.at("seed")), strategies[s]};
      for (const Column& c : cols) {
        if (c.field < 0) {  // a column an older record may lack
          const auto a = r.arrays.find(c.metric);
          row.push_back(a == r.arrays.end() ? num(std::nan(""), exact) : num(a->second.values.at(s), true));
        } else {
          row.push_back(num(r.arrays.at("stat_" + c.metric).values.at(s * kAggregateCount + c.field), exact));
        }
      }
      row.push_back(num(r.arrays.at("stat_k").values.at(s * kAggregateCount), true));
      rows.push_back(std::move(row));
    }
  }

  std::ostringstream os;
  if (format == ReportFormat::Csv) {
    for (std::size_t i = 0; i < head.size(); ++i) os << (i ? "," : "") << head[i];
    os << "\n";
    for (const auto& row : rows) {
      for (std::size_t i = 0; i < row.size(); ++i) {
        const bool quote = row[i].find(',') != std::string::npos;
        os << (i ? "," : "") << (quote ? "\"" + row[i] + "\"" : row[i]);
      }
      os << "\n";
    }
    return os.str();
  }
  const std::string name = h5::read_attr_string(file, "study_name");
  os << (format == ReportFormat::Markdown ? "**" : "") << "study " << (name.empty() ? path : name) << ": "
     << recs.size() << " of " << total << " configurations recorded"
     << (static_cast<std::int64_t>(recs.size()) == total ? "" : " (incomplete: rerun the study to finish it)")
     << (format == ReportFormat::Markdown ? "**\n\n" : "\n");
  if (h5::exists(file, "alignment")) {
    h5::Handle al(h5::check_id(H5Gopen2(file, "alignment", H5P_DEFAULT), path + ": cannot open /alignment", kExitData));
    const std::string ref = h5::read_attr_string(al, "reference");
    if (!ref.empty()) {
      os << "budget alignment: reference " << ref << ", total k over the lengths "
         << h5::read_attr_int(al, "reference_total") << " (aligned strategies' alpha and totals in /alignment)"
         << (format == ReportFormat::Markdown ? "\n\n" : "\n");
    }
  }
  std::vector<std::size_t> width(head.size());
  for (std::size_t i = 0; i < head.size(); ++i) width[i] = head[i].size();
  for (const auto& row : rows) {
    for (std::size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  auto emit = [&](const std::vector<std::string>& row) {
    if (format == ReportFormat::Markdown) {
      os << "|";
      for (const std::string& cell : row) os << " " << cell << " |";
    } else {
      for (std::size_t i = 0; i < row.size(); ++i) {
        const bool left = i == 2 || i == 4;
        char buf[256];
        std::snprintf(buf, sizeof buf, left ? "%-*s" : "%*s", static_cast<int>(width[i]), row[i].c_str());
        os << (i ? "  " : "") << buf;
      }
    }
    os << "\n";
  };
  emit(head);
  if (format == ReportFormat::Markdown) {
    os << "|";
    for (std::size_t i = 0; i < head.size(); ++i) os << (i < 5 && i != 0 && i != 1 && i != 3 ? " --- |" : " ---: |");
    os << "\n";
  }
  for (const auto& row : rows) emit(row);
  return os.str();
}

}  // namespace ncsparse::study
