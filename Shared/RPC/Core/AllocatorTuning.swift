#if canImport(Glibc)
internal import Glibc
#endif

/// glibc malloc settings for a process that moves large messages (up to the 4 MiB default limit).
///
/// By default glibc serves an allocation of 128 KiB or more (raised dynamically up to the last
/// such size freed) with its own `mmap`, and gives a thread arena's free top back to the kernel
/// (`madvise`) once it exceeds twice that. A 1 MiB call then costs fresh pages for every buffer
/// it touches: the kernel zeroes them on first touch and unmaps them at free, about a fifth of
/// the server's CPU on 1 MiB calls (page faults, `clear_page`, `madvise`). Here allocations up to
/// 8 MiB come from the heap, and an arena keeps up to 4 MiB of free top (one largest message)
/// before trimming. Keeping 16 MiB made four concurrent 1 MiB calls twice as cheap again, but
/// the retained memory then shows as RSS growth of 4-8 MB in the connection memory test: the
/// lasting fix is fewer large buffers per call, not a larger cache.
enum AllocatorTuning {
  static let mmapThreshold: Int32 = 8 << 20
  static let trimThreshold: Int32 = 4 << 20

  /// Applies the settings once per process (the first use of `RuntimeEventLoops.shared`).
  static let applied: Void = {
    #if canImport(Glibc)
    // <malloc.h> is not part of the Glibc module: look `mallopt` up (absent under musl).
    typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return }
    let mallopt = unsafeBitCast(symbol, to: Mallopt.self)
    let trimThreshold: Int32 = -1, mmapThreshold: Int32 = -3  // M_TRIM_THRESHOLD, M_MMAP_THRESHOLD
    _ = mallopt(mmapThreshold, AllocatorTuning.mmapThreshold)
    _ = mallopt(trimThreshold, AllocatorTuning.trimThreshold)
    #endif
  }()
}
