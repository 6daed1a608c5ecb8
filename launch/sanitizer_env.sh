# Sourced by launch/sanitize.sh and launch/fuzz.sh (with $root set): the environment of every
# instrumented process, the build's test discovery (gtest_discover_tests runs the test binaries)
# and every MPI rank included: mpiexec passes the environment on. Leak stacks are unwound in
# full (fast_unwind_on_malloc=0) and OpenMPI keeps its plugins loaded (disable_dlclose):
# otherwise their frames read as "<unknown module>" and the suppressions
# (tests/sanitize/lsan.supp: the MPI stack and HDF5) cannot name them.
export ASAN_OPTIONS="detect_leaks=1:fast_unwind_on_malloc=0:check_initialization_order=1"
export LSAN_OPTIONS="suppressions=$root/tests/sanitize/lsan.supp:print_suppressions=0:fast_unwind_on_malloc=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export OMPI_MCA_mca_base_component_disable_dlclose=1
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
