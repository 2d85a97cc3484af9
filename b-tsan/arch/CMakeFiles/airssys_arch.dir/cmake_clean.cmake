file(REMOVE_RECURSE
  "../lib/libairssys_arch.a"
  "../lib/libairssys_arch.pdb"
  "CMakeFiles/airssys_arch.dir/linux/cgroup.cpp.o"
  "CMakeFiles/airssys_arch.dir/linux/cgroup.cpp.o.d"
  "CMakeFiles/airssys_arch.dir/linux/guardian.cpp.o"
  "CMakeFiles/airssys_arch.dir/linux/guardian.cpp.o.d"
  "CMakeFiles/airssys_arch.dir/linux/poller.cpp.o"
  "CMakeFiles/airssys_arch.dir/linux/poller.cpp.o.d"
  "CMakeFiles/airssys_arch.dir/linux/process.cpp.o"
  "CMakeFiles/airssys_arch.dir/linux/process.cpp.o.d"
  "CMakeFiles/airssys_arch.dir/linux/usage.cpp.o"
  "CMakeFiles/airssys_arch.dir/linux/usage.cpp.o.d"
  "CMakeFiles/airssys_arch.dir/linux/wait.cpp.o"
  "CMakeFiles/airssys_arch.dir/linux/wait.cpp.o.d"
  "CMakeFiles/airssys_arch.dir/posix/stream.cpp.o"
  "CMakeFiles/airssys_arch.dir/posix/stream.cpp.o.d"
  "CMakeFiles/airssys_arch.dir/posix/time.cpp.o"
  "CMakeFiles/airssys_arch.dir/posix/time.cpp.o.d"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/airssys_arch.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
