# Cross build for 64-bit ARM Linux with Debian's cross toolchain and its
# multiarch (:arm64) -dev packages; docs/PORTING.md. Run the results under
# qemu-user: ctest does that through CMAKE_CROSSCOMPILING_EMULATOR.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_ASM_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu /usr/lib/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
# pkg-config must see the target's .pc files, never the build machine's.
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig)
set(ENV{PKG_CONFIG_PATH} "")
# No -L /usr/aarch64-linux-gnu (QEMU_LD_PREFIX): that loader is the cross
# toolchain's glibc build, and the :arm64 libraries bring their own libc.so.6.
# A loader and a libc from two builds disagree on the loader's private data:
# pthread_create then spins forever on a lock (get_cached_stack), which looked
# like a deadlock of --threads 2. Without -L the loader and libc are both the
# :arm64 packages' (/lib/ld-linux-aarch64.so.1).
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64)
