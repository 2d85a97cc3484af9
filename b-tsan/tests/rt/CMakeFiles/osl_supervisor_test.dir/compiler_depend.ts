# CMAKE generated file: DO NOT EDIT!
# Timestamp file for compiler generated dependencies management for osl_supervisor_test.
