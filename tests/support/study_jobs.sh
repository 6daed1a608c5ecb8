# Shared by the study and fault tests (sourced): the small study they run, and a study job in
# the background whose ranks can be signalled one by one.

# write_study FILE SEEDS [LENGTHS]: a small study, LENGTHS (default 2048, 4096, 8192) x SEEDS
# seeds, four strategies, blocks of 16 query rows (so a job polls for signals often).
write_study() {
  cat >"$1" <<TOML
[study]
name = "test"
n = [${3:-2048, 4096, 8192}]
d = [32]
seeds = [$2]
queries = 48
sparsity_eps = [1e-2]

[engine]
block = 16
tile = 512

[[model]]
model = "paper"

[windows]
align = "const:32"
aligned = ["log", "power:0.5"]
strategies = ["cert:1e-2"]
TOML
}

# study_bg NP OUT STUDYFILE OUTFILE ERRFILE: `mpiexec -n NP ncsparse study` in the background,
# the launcher's pid in $bg (needs $mpiexec and $bin).
study_bg() {
  "$mpiexec" -q -n "$1" "$bin" study "$3" --out "$2" >"$4" 2>"$5" &
  bg=$!
}

# ranks_of PID: the launcher's children, the ranks, in the order of their pids.
ranks_of() { pgrep -P "$1" | sort -n; }
