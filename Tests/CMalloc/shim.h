#ifndef CMALLOC_SHIM_H
#define CMALLOC_SHIM_H
// glibc's allocator statistics (mallinfo2), which Swift's Glibc module does not export: the
// interop server reports its heap in use for the connection memory test.
#include <malloc.h>
#endif
