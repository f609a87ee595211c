#pragma once
// A whole file in memory, read-only (POSIX): tensors point into it for the lifetime of
// the GgufFile that owns it. By default a mapping of the file (weights never copied, the
// page cache shared between processes); RESIDENT reads it into the process's own memory
// instead (anonymous, 2 MiB pages where transparent huge pages allow): token generation
// streams the weights faster from it (measured on Zen4: +12% tokens/s on one thread, as
// llama.cpp's --no-mmap), at the price of a read at load and no sharing.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

namespace deepmla {

enum class FileMemory { MAPPED, RESIDENT };

// Called between reads of a RESIDENT load with (bytes read, file size); false aborts it.
using ReadProgress = std::function<bool(uint64_t, uint64_t)>;

class MappedFile {
 public:
  // Throws Error IO_ERROR when the path is missing, unreadable, not a regular file, or
  // cannot be mapped or read; OUT_OF_MEMORY when RESIDENT memory cannot be had (the file
  // is larger than the memory available); ABORTED when progress returns false.
  explicit MappedFile(const std::string& path, FileMemory memory = FileMemory::MAPPED,
                      const ReadProgress& progress = nullptr);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  // nullptr for an empty file (mmap of length 0 is invalid).
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  FileMemory memory() const { return memory_; }

 private:
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  FileMemory memory_ = FileMemory::MAPPED;
};

}  // namespace deepmla
