file(REMOVE_RECURSE
  "../lib/libairssys_arch.a"
)
