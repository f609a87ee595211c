#pragma once
// GGUF v2/v3 reader over a read-only mmap. Every count, length, offset, dimension and
// type read from the file is checked against the file size before use; any violation
// throws deepmla::Error with a GGUF_* code (see error.hpp).
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "deepmla/types.hpp"

namespace deepmla {

enum class GgufValueType : uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6,
  BOOL = 7, STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};

struct GgufValue {
  GgufValueType type = GgufValueType::UINT8;
  // Scalars: integers in u64/i64 as fits the type (bool in u64), floats in f64.
  uint64_t u64 = 0;
  int64_t i64 = 0;
  double f64 = 0;
  std::string str;
  // Arrays: element type and elements (nested arrays allowed).
  GgufValueType array_type = GgufValueType::UINT8;
  std::vector<GgufValue> array;
};

struct GgufTensorInfo {
  std::string name;
  uint32_t type_id = 0;          // raw GGUF type id
  TensorType type = TensorType::F32;
  std::vector<int64_t> ne;       // dimensions, ne[0] innermost (contiguous)
  uint64_t offset = 0;           // relative to the start of the data section
  uint64_t nbytes = 0;           // bytes the tensor occupies
  const uint8_t* data = nullptr; // into the mapping
};

class MappedFile;

class GgufFile {
 public:
  // Opens, maps and validates the whole header (metadata + tensor infos + bounds).
  static std::unique_ptr<GgufFile> open(const std::string& path);
  // The same with the whole file read into the process's own memory first
  // (core/mapped_file.hpp, FileMemory::RESIDENT), calling progress(bytes read, file size)
  // between reads; progress returning false aborts with ABORTED.
  static std::unique_ptr<GgufFile> open_resident(const std::string& path,
                                                 const std::function<bool(uint64_t, uint64_t)>& progress);
  // True for open_resident: every page is already in memory, prefault has nothing to do.
  bool resident() const;
  // Parses an in-memory image (used by tests and the fuzzer); `data` must outlive it.
  static std::unique_ptr<GgufFile> parse(const uint8_t* data, size_t size);
  ~GgufFile();

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  uint64_t file_size() const { return size_; }
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return metadata_; }
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }

  const GgufValue* find_key(const std::string& key) const;
  const GgufTensorInfo* find_tensor(const std::string& name) const;

  // Touches every page of the tensor data (so a later forward pass does not fault), calling
  // progress(bytes_done, bytes_total) now and then; returns false if progress asked to stop.
  template <class F>
  bool prefault(F&& progress) const;

  const uint8_t* base() const { return base_; }

 private:
  GgufFile() = default;
  static std::unique_ptr<GgufFile> open_mapping(std::unique_ptr<MappedFile> mapping, const std::string& path);
  void parse_header();

  std::unique_ptr<MappedFile> mapping_;
  const uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::map<std::string, size_t> key_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

template <class F>
bool GgufFile::prefault(F&& progress) const {
  const uint64_t begin = data_offset_, end = size_;
  const uint64_t total = end > begin ? end - begin : 0;
  constexpr uint64_t kPage = 4096, kReport = 64ull << 20;
  volatile uint8_t sink = 0;
  uint64_t next_report = 0;
  for (uint64_t off = 0; off < total; off += kPage) {
    sink = sink + base_[begin + off];
    if (off >= next_report) {
      if (!progress(off, total)) return false;
      next_report = off + kReport;
    }
  }
  (void)sink;
  return progress(total, total);
}

}  // namespace deepmla
