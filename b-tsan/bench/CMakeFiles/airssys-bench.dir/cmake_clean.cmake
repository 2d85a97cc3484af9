file(REMOVE_RECURSE
  "../bin/airssys-bench"
  "../bin/airssys-bench.pdb"
  "CMakeFiles/airssys-bench.dir/__/tests/support/alloc_counter.cpp.o"
  "CMakeFiles/airssys-bench.dir/__/tests/support/alloc_counter.cpp.o.d"
  "CMakeFiles/airssys-bench.dir/caf_peers.cpp.o"
  "CMakeFiles/airssys-bench.dir/caf_peers.cpp.o.d"
  "CMakeFiles/airssys-bench.dir/limit_spin.cpp.o"
  "CMakeFiles/airssys-bench.dir/limit_spin.cpp.o.d"
  "CMakeFiles/airssys-bench.dir/main.cpp.o"
  "CMakeFiles/airssys-bench.dir/main.cpp.o.d"
  "CMakeFiles/airssys-bench.dir/osl_peers.cpp.o"
  "CMakeFiles/airssys-bench.dir/osl_peers.cpp.o.d"
  "CMakeFiles/airssys-bench.dir/osl_spawn.cpp.o"
  "CMakeFiles/airssys-bench.dir/osl_spawn.cpp.o.d"
  "CMakeFiles/airssys-bench.dir/rt_messaging.cpp.o"
  "CMakeFiles/airssys-bench.dir/rt_messaging.cpp.o.d"
  "CMakeFiles/airssys-bench.dir/rt_monitoring.cpp.o"
  "CMakeFiles/airssys-bench.dir/rt_monitoring.cpp.o.d"
  "CMakeFiles/airssys-bench.dir/rt_processes.cpp.o"
  "CMakeFiles/airssys-bench.dir/rt_processes.cpp.o.d"
  "CMakeFiles/airssys-bench.dir/rt_structures.cpp.o"
  "CMakeFiles/airssys-bench.dir/rt_structures.cpp.o.d"
  "CMakeFiles/airssys-bench.dir/rt_supervision.cpp.o"
  "CMakeFiles/airssys-bench.dir/rt_supervision.cpp.o.d"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/airssys-bench.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
