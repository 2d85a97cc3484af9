# Empty compiler generated dependencies file for airssys-bench.
# This may be replaced when dependencies are built.
