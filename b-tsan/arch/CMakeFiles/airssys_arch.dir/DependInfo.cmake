
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/main/arch/linux/cgroup.cpp" "arch/CMakeFiles/airssys_arch.dir/linux/cgroup.cpp.o" "gcc" "arch/CMakeFiles/airssys_arch.dir/linux/cgroup.cpp.o.d"
  "/work/main/arch/linux/guardian.cpp" "arch/CMakeFiles/airssys_arch.dir/linux/guardian.cpp.o" "gcc" "arch/CMakeFiles/airssys_arch.dir/linux/guardian.cpp.o.d"
  "/work/main/arch/linux/poller.cpp" "arch/CMakeFiles/airssys_arch.dir/linux/poller.cpp.o" "gcc" "arch/CMakeFiles/airssys_arch.dir/linux/poller.cpp.o.d"
  "/work/main/arch/linux/process.cpp" "arch/CMakeFiles/airssys_arch.dir/linux/process.cpp.o" "gcc" "arch/CMakeFiles/airssys_arch.dir/linux/process.cpp.o.d"
  "/work/main/arch/linux/usage.cpp" "arch/CMakeFiles/airssys_arch.dir/linux/usage.cpp.o" "gcc" "arch/CMakeFiles/airssys_arch.dir/linux/usage.cpp.o.d"
  "/work/main/arch/linux/wait.cpp" "arch/CMakeFiles/airssys_arch.dir/linux/wait.cpp.o" "gcc" "arch/CMakeFiles/airssys_arch.dir/linux/wait.cpp.o.d"
  "/work/main/arch/posix/stream.cpp" "arch/CMakeFiles/airssys_arch.dir/posix/stream.cpp.o" "gcc" "arch/CMakeFiles/airssys_arch.dir/posix/stream.cpp.o.d"
  "/work/main/arch/posix/time.cpp" "arch/CMakeFiles/airssys_arch.dir/posix/time.cpp.o" "gcc" "arch/CMakeFiles/airssys_arch.dir/posix/time.cpp.o.d"
  )

# Targets to which this target links.
set(CMAKE_TARGET_LINKED_INFO_FILES
  "/work/main/b-tsan/base/CMakeFiles/airssys_base.dir/DependInfo.cmake"
  )

# Fortran module output directory.
set(CMAKE_Fortran_TARGET_MODULE_DIR "")
