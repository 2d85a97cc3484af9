
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/main/osl/src/audit.cpp" "osl/CMakeFiles/airssys_osl.dir/src/audit.cpp.o" "gcc" "osl/CMakeFiles/airssys_osl.dir/src/audit.cpp.o.d"
  "/work/main/osl/src/executor.cpp" "osl/CMakeFiles/airssys_osl.dir/src/executor.cpp.o" "gcc" "osl/CMakeFiles/airssys_osl.dir/src/executor.cpp.o.d"
  "/work/main/osl/src/policy.cpp" "osl/CMakeFiles/airssys_osl.dir/src/policy.cpp.o" "gcc" "osl/CMakeFiles/airssys_osl.dir/src/policy.cpp.o.d"
  "/work/main/osl/src/teardown.cpp" "osl/CMakeFiles/airssys_osl.dir/src/teardown.cpp.o" "gcc" "osl/CMakeFiles/airssys_osl.dir/src/teardown.cpp.o.d"
  )

# Targets to which this target links.
set(CMAKE_TARGET_LINKED_INFO_FILES
  "/work/main/b-tsan/arch/CMakeFiles/airssys_arch.dir/DependInfo.cmake"
  "/work/main/b-tsan/base/CMakeFiles/airssys_base.dir/DependInfo.cmake"
  )

# Fortran module output directory.
set(CMAKE_Fortran_TARGET_MODULE_DIR "")
