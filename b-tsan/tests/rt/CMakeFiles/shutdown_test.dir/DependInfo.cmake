
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/main/tests/rt/shutdown_test.cpp" "tests/rt/CMakeFiles/shutdown_test.dir/shutdown_test.cpp.o" "gcc" "tests/rt/CMakeFiles/shutdown_test.dir/shutdown_test.cpp.o.d"
  )

# Targets to which this target links.
set(CMAKE_TARGET_LINKED_INFO_FILES
  "/work/main/b-tsan/rt/CMakeFiles/airssys_rt.dir/DependInfo.cmake"
  "/work/main/b-tsan/tests/CMakeFiles/airssys_test_support.dir/DependInfo.cmake"
  "/work/main/b-tsan/osl/CMakeFiles/airssys_osl.dir/DependInfo.cmake"
  "/work/main/b-tsan/arch/CMakeFiles/airssys_arch.dir/DependInfo.cmake"
  "/work/main/b-tsan/base/CMakeFiles/airssys_base.dir/DependInfo.cmake"
  )

# Fortran module output directory.
set(CMAKE_Fortran_TARGET_MODULE_DIR "")
