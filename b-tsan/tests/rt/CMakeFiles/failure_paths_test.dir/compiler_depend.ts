# CMAKE generated file: DO NOT EDIT!
# Timestamp file for compiler generated dependencies management for failure_paths_test.
