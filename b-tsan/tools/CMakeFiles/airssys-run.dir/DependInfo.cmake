
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/main/tools/airssys-run.cpp" "tools/CMakeFiles/airssys-run.dir/airssys-run.cpp.o" "gcc" "tools/CMakeFiles/airssys-run.dir/airssys-run.cpp.o.d"
  "/work/main/tools/run/metrics.cpp" "tools/CMakeFiles/airssys-run.dir/run/metrics.cpp.o" "gcc" "tools/CMakeFiles/airssys-run.dir/run/metrics.cpp.o.d"
  "/work/main/tools/run/output.cpp" "tools/CMakeFiles/airssys-run.dir/run/output.cpp.o" "gcc" "tools/CMakeFiles/airssys-run.dir/run/output.cpp.o.d"
  "/work/main/tools/run/procfile.cpp" "tools/CMakeFiles/airssys-run.dir/run/procfile.cpp.o" "gcc" "tools/CMakeFiles/airssys-run.dir/run/procfile.cpp.o.d"
  "/work/main/tools/run/services.cpp" "tools/CMakeFiles/airssys-run.dir/run/services.cpp.o" "gcc" "tools/CMakeFiles/airssys-run.dir/run/services.cpp.o.d"
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
