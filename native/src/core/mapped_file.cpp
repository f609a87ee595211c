#include "core/mapped_file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "deepmla/error.hpp"

namespace deepmla {

namespace {
[[noreturn]] void io_fail(const std::string& path, const char* what, int err) {
  fail(codes::kIo, path + ": " + what + ": " + std::strerror(err));
}

// Bytes the kernel reports it could give without swapping (MemAvailable), or 0 if unknown.
uint64_t available_memory() {
  std::FILE* f = std::fopen("/proc/meminfo", "r");
  if (!f) return 0;
  char line[256];
  unsigned long long kib = 0;
  while (std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "MemAvailable: %llu kB", &kib) == 1) break;
  std::fclose(f);
  return uint64_t(kib) * 1024;
}

// The whole file in anonymous memory, read in 64 MiB pieces (progress between them),
// then made read-only like a mapping. Refused up front when it cannot fit: anonymous
// memory is committed lazily, and running out while reading would meet the OOM killer.
const uint8_t* read_resident(const std::string& path, int fd, size_t size, const ReadProgress& progress) {
  const uint64_t available = available_memory();
  if (available != 0 && size > available)
    fail(codes::kOutOfMemory, path + ": " + std::to_string(size) + " bytes do not fit in the " +
                                  std::to_string(available) + " bytes of memory available; map the file instead");
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    fail(codes::kOutOfMemory, path + ": cannot allocate " + std::to_string(size) + " bytes to read the file into");
  try {
    // Transparent huge pages in "madvise" mode take this hint; where they are off it is
    // ignored, and where it fails the pages are small: faster or the same, never wrong.
    (void)::madvise(p, size, MADV_HUGEPAGE);
    uint8_t* bytes = static_cast<uint8_t*>(p);
    constexpr size_t kPiece = size_t(64) << 20;
    size_t done = 0;
    while (done < size) {
      if (progress && !progress(done, size)) fail(codes::kAborted, "loading was aborted");
      const size_t want = size - done < kPiece ? size - done : kPiece;
      const ssize_t got = ::pread(fd, bytes + done, want, off_t(done));
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) io_fail(path, "cannot read", errno);
      if (got == 0) fail(codes::kIo, path + ": the file shrank while it was read");
      done += size_t(got);
    }
    if (progress && !progress(size, size)) fail(codes::kAborted, "loading was aborted");
    if (::mprotect(p, size, PROT_READ) != 0) io_fail(path, "cannot make the read file read-only", errno);
    return bytes;
  } catch (...) {
    ::munmap(p, size);
    throw;
  }
}
}  // namespace

MappedFile::MappedFile(const std::string& path, FileMemory memory, const ReadProgress& progress) : memory_(memory) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) io_fail(path, "cannot open", errno);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    io_fail(path, "cannot stat", err);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(codes::kIo, path + ": not a regular file" + (S_ISDIR(st.st_mode) ? " (it is a directory)" : ""));
  }
  size_ = size_t(st.st_size);
  if (size_ > 0 && memory == FileMemory::MAPPED) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      io_fail(path, "cannot mmap", err);
    }
    data_ = static_cast<const uint8_t*>(p);
  } else if (size_ > 0) {
    try {
      data_ = read_resident(path, fd, size_, progress);
    } catch (...) {
      ::close(fd);
      throw;
    }
  }
  // The mapping stays valid after close.
  ::close(fd);
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

}  // namespace deepmla
