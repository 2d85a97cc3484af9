
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/main/tests/support/alloc_counter.cpp" "bench/CMakeFiles/airssys-bench.dir/__/tests/support/alloc_counter.cpp.o" "gcc" "bench/CMakeFiles/airssys-bench.dir/__/tests/support/alloc_counter.cpp.o.d"
  "/work/main/bench/caf_peers.cpp" "bench/CMakeFiles/airssys-bench.dir/caf_peers.cpp.o" "gcc" "bench/CMakeFiles/airssys-bench.dir/caf_peers.cpp.o.d"
  "/work/main/bench/limit_spin.cpp" "bench/CMakeFiles/airssys-bench.dir/limit_spin.cpp.o" "gcc" "bench/CMakeFiles/airssys-bench.dir/limit_spin.cpp.o.d"
  "/work/main/bench/main.cpp" "bench/CMakeFiles/airssys-bench.dir/main.cpp.o" "gcc" "bench/CMakeFiles/airssys-bench.dir/main.cpp.o.d"
  "/work/main/bench/osl_peers.cpp" "bench/CMakeFiles/airssys-bench.dir/osl_peers.cpp.o" "gcc" "bench/CMakeFiles/airssys-bench.dir/osl_peers.cpp.o.d"
  "/work/main/bench/osl_spawn.cpp" "bench/CMakeFiles/airssys-bench.dir/osl_spawn.cpp.o" "gcc" "bench/CMakeFiles/airssys-bench.dir/osl_spawn.cpp.o.d"
  "/work/main/bench/rt_messaging.cpp" "bench/CMakeFiles/airssys-bench.dir/rt_messaging.cpp.o" "gcc" "bench/CMakeFiles/airssys-bench.dir/rt_messaging.cpp.o.d"
  "/work/main/bench/rt_monitoring.cpp" "bench/CMakeFiles/airssys-bench.dir/rt_monitoring.cpp.o" "gcc" "bench/CMakeFiles/airssys-bench.dir/rt_monitoring.cpp.o.d"
  "/work/main/bench/rt_processes.cpp" "bench/CMakeFiles/airssys-bench.dir/rt_processes.cpp.o" "gcc" "bench/CMakeFiles/airssys-bench.dir/rt_processes.cpp.o.d"
  "/work/main/bench/rt_structures.cpp" "bench/CMakeFiles/airssys-bench.dir/rt_structures.cpp.o" "gcc" "bench/CMakeFiles/airssys-bench.dir/rt_structures.cpp.o.d"
  "/work/main/bench/rt_supervision.cpp" "bench/CMakeFiles/airssys-bench.dir/rt_supervision.cpp.o" "gcc" "bench/CMakeFiles/airssys-bench.dir/rt_supervision.cpp.o.d"
  )

# Targets to which this target links.
set(CMAKE_TARGET_LINKED_INFO_FILES
  "/work/main/b-tsan/rt/CMakeFiles/airssys_rt.dir/DependInfo.cmake"
  "/work/main/b-tsan/osl/CMakeFiles/airssys_osl.dir/DependInfo.cmake"
  "/work/main/b-tsan/arch/CMakeFiles/airssys_arch.dir/DependInfo.cmake"
  "/work/main/b-tsan/base/CMakeFiles/airssys_base.dir/DependInfo.cmake"
  )

# Fortran module output directory.
set(CMAKE_Fortran_TARGET_MODULE_DIR "")
