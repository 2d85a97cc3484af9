# CMake generated Testfile for 
# Source directory: /work/main
# Build directory: /work/main/b-tsan
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
subdirs("base")
subdirs("arch")
subdirs("osl")
subdirs("rt")
subdirs("tools")
subdirs("tests")
subdirs("bench")
subdirs("examples")
