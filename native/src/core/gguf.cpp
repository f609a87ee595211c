// GGUF v2/v3 reader (format: ggml docs/gguf.md). The header is parsed straight from the
// mapping; every count, length and offset is compared with the bytes that remain before
// it is used, so a hostile file fails fast with a GGUF_* code instead of allocating or
// reading out of bounds.
#include "deepmla/gguf.hpp"

#include <algorithm>
#include <cstring>
#include <limits>

#include "core/mapped_file.hpp"
#include "deepmla/error.hpp"

namespace deepmla {

namespace {

// GGUF spec: GGUF_DEFAULT_ALIGNMENT, used when general.alignment is absent.
constexpr uint64_t kDefaultAlignment = 32;
// ggml itself rejects arrays of arrays; we accept a few levels (the value model allows
// them) but bound the recursion so a crafted file cannot exhaust the stack.
constexpr int kMaxArrayDepth = 8;
// Smallest encodings, used to bound claimed counts by the bytes that remain.
constexpr uint64_t kMinStringBytes = 8;                       // u64 length, empty text
constexpr uint64_t kMinArrayBytes = 4 + 8;                    // element type + count
constexpr uint64_t kMinKvBytes = kMinStringBytes + 4 + 1;     // key, type, 1-byte value
constexpr uint64_t kMinTensorInfoBytes = kMinStringBytes + 4 + 8 + 4 + 8;  // 1 dim
constexpr uint32_t kMaxDims = 4;                              // GGML_MAX_DIMS

const char* value_type_name(uint32_t t) {
  static const char* const kNames[] = {"uint8", "int8",  "uint16", "int16",  "uint32", "int32", "float32",
                                       "bool",  "string", "array", "uint64", "int64",  "float64"};
  return t < 13 ? kNames[t] : "unknown";
}

// Bytes of one element of a fixed-size type; 0 for string and array.
uint64_t fixed_size(GgufValueType t) {
  switch (t) {
    case GgufValueType::UINT8: case GgufValueType::INT8: case GgufValueType::BOOL: return 1;
    case GgufValueType::UINT16: case GgufValueType::INT16: return 2;
    case GgufValueType::UINT32: case GgufValueType::INT32: case GgufValueType::FLOAT32: return 4;
    case GgufValueType::UINT64: case GgufValueType::INT64: case GgufValueType::FLOAT64: return 8;
    default: return 0;
  }
}

uint64_t min_size(GgufValueType t) {
  if (t == GgufValueType::STRING) return kMinStringBytes;
  if (t == GgufValueType::ARRAY) return kMinArrayBytes;
  return fixed_size(t);
}

// A bounds-checked little-endian cursor. `context_` names what is being read (a key or
// tensor) so that every error says what and where.
class Reader {
 public:
  Reader(const uint8_t* base, uint64_t size) : base_(base), size_(size) {}

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }
  void set_context(std::string context) { context_ = std::move(context); }
  const std::string& context() const { return context_; }

  [[noreturn]] void error(const char* code, const std::string& what, uint64_t at) const {
    fail(code, context_ + " at byte " + std::to_string(at) + ": " + what);
  }

  void need(uint64_t n, const char* what) const {
    if (n > remaining())
      error(codes::kGgufTruncated,
            std::string("truncated: ") + what + " needs " + std::to_string(n) + " bytes, " +
                std::to_string(remaining()) + " remain (file size " + std::to_string(size_) + ")",
            pos_);
  }

  template <class T>
  T read(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, base_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  std::string read_string(const char* what) {
    const uint64_t at = pos_;
    const uint64_t len = read<uint64_t>(what);
    if (len > remaining()) {
      error(codes::kGgufTruncated,
            std::string("truncated: ") + what + " claims " + std::to_string(len) + " bytes, " +
                std::to_string(remaining()) + " remain (file size " + std::to_string(size_) + ")",
            at);
    }
    std::string s(reinterpret_cast<const char*>(base_ + pos_), size_t(len));
    pos_ += len;
    return s;
  }

  // Reads a u32 value type and checks it is one of the 13 GGUF types.
  GgufValueType read_value_type(const char* what) {
    const uint64_t at = pos_;
    const uint32_t t = read<uint32_t>(what);
    if (t > uint32_t(GgufValueType::FLOAT64))
      error(codes::kGgufBadValueType, std::string("unknown ") + what + " " + std::to_string(t), at);
    return GgufValueType(t);
  }

  void read_value(GgufValueType type, int depth, GgufValue& out) {
    out.type = type;
    switch (type) {
      case GgufValueType::UINT8: out.u64 = read<uint8_t>("uint8 value"); break;
      case GgufValueType::INT8: out.i64 = read<int8_t>("int8 value"); break;
      case GgufValueType::UINT16: out.u64 = read<uint16_t>("uint16 value"); break;
      case GgufValueType::INT16: out.i64 = read<int16_t>("int16 value"); break;
      case GgufValueType::UINT32: out.u64 = read<uint32_t>("uint32 value"); break;
      case GgufValueType::INT32: out.i64 = read<int32_t>("int32 value"); break;
      case GgufValueType::UINT64: out.u64 = read<uint64_t>("uint64 value"); break;
      case GgufValueType::INT64: out.i64 = read<int64_t>("int64 value"); break;
      case GgufValueType::FLOAT32: out.f64 = read<float>("float32 value"); break;
      case GgufValueType::FLOAT64: out.f64 = read<double>("float64 value"); break;
      case GgufValueType::BOOL: out.u64 = read<uint8_t>("bool value") != 0; break;
      case GgufValueType::STRING: out.str = read_string("string value"); break;
      case GgufValueType::ARRAY: read_array(depth, out); break;
    }
  }

 private:
  void read_array(int depth, GgufValue& out) {
    const uint64_t at = pos_;
    if (depth >= kMaxArrayDepth)
      error(codes::kGgufBadValue, "arrays nested deeper than " + std::to_string(kMaxArrayDepth) + " levels", at);
    out.array_type = read_value_type("array element type");
    const uint64_t count = read<uint64_t>("array count");
    // Bound the count by the bytes left before reserving anything: a claimed 2^63
    // elements fails here, in constant time.
    const uint64_t each = min_size(out.array_type);
    if (count > remaining() / each)
      error(codes::kGgufTruncated,
            "truncated: array claims " + std::to_string(count) + " elements of type " +
                value_type_name(uint32_t(out.array_type)) + " (at least " + std::to_string(each) +
                " bytes each), " + std::to_string(remaining()) + " bytes remain",
            at);
    // TODO(memory): one GgufValue (~100 bytes) per element, so a file made of one huge
    // uint8 array costs ~100x its size; packing fixed-size arrays would bound it at 1x.
    out.array.resize(size_t(count));
    for (GgufValue& element : out.array) read_value(out.array_type, depth + 1, element);
  }

  const uint8_t* base_;
  uint64_t size_;
  uint64_t pos_ = 0;
  std::string context_ = "header";
};

bool mul_overflows(uint64_t a, uint64_t b, uint64_t limit) { return a != 0 && b > limit / a; }

}  // namespace

GgufFile::~GgufFile() = default;

std::unique_ptr<GgufFile> GgufFile::open(const std::string& path) { return open_mapping(std::make_unique<MappedFile>(path), path); }

std::unique_ptr<GgufFile> GgufFile::open_resident(const std::string& path,
                                                  const std::function<bool(uint64_t, uint64_t)>& progress) {
  return open_mapping(std::make_unique<MappedFile>(path, FileMemory::RESIDENT, progress), path);
}

bool GgufFile::resident() const { return mapping_ && mapping_->memory() == FileMemory::RESIDENT; }

std::unique_ptr<GgufFile> GgufFile::open_mapping(std::unique_ptr<MappedFile> mapping, const std::string& path) {
  std::unique_ptr<GgufFile> file(new GgufFile());
  file->mapping_ = std::move(mapping);
  file->base_ = file->mapping_->data();
  file->size_ = file->mapping_->size();
  try {
    file->parse_header();
  } catch (const Error& e) {
    throw Error(e.code(), path + ": " + e.what());
  }
  return file;
}

std::unique_ptr<GgufFile> GgufFile::parse(const uint8_t* data, size_t size) {
  std::unique_ptr<GgufFile> file(new GgufFile());
  file->base_ = data;
  file->size_ = size;
  file->parse_header();
  return file;
}

const GgufValue* GgufFile::find_key(const std::string& key) const {
  auto it = key_index_.find(key);
  return it == key_index_.end() ? nullptr : &metadata_[it->second].second;
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

void GgufFile::parse_header() {
  Reader r(base_, size_);

  // A prefix that is not "GGUF" is the wrong kind of file even if it is short.
  if (size_ > 0 && std::memcmp(base_, "GGUF", std::min<uint64_t>(size_, 4)) != 0)
    fail(codes::kGgufBadMagic, "not a GGUF file: the first bytes are not \"GGUF\"");
  r.read<uint32_t>("magic");
  const uint64_t version_at = r.pos();
  version_ = r.read<uint32_t>("version");
  if (version_ != 2 && version_ != 3) {
    const uint32_t swapped = __builtin_bswap32(version_);
    std::string why = "GGUF version " + std::to_string(version_) + " is not supported (deepmla reads versions 2 and 3)";
    if (version_ == 1) why = "GGUF version 1 is not supported (deepmla reads versions 2 and 3; re-convert the model)";
    // A big-endian writer stores version 3 as 00 00 00 03, read here as 0x03000000.
    if (swapped >= 1 && swapped <= 3)
      why = "the file is big-endian (version bytes read " + std::to_string(version_) + ", i.e. version " +
            std::to_string(swapped) + " byte-swapped); deepmla reads little-endian GGUF only";
    r.error(codes::kGgufUnsupportedVersion, why, version_at);
  }

  const uint64_t n_tensors = r.read<uint64_t>("tensor count");
  const uint64_t n_kv = r.read<uint64_t>("metadata count");
  if (n_kv > r.remaining() / kMinKvBytes || n_tensors > r.remaining() / kMinTensorInfoBytes ||
      n_kv * kMinKvBytes + n_tensors * kMinTensorInfoBytes > r.remaining())
    r.error(codes::kGgufTruncated,
            "truncated: header claims " + std::to_string(n_kv) + " metadata entries and " +
                std::to_string(n_tensors) + " tensors, only " + std::to_string(r.remaining()) + " bytes remain",
            8);

  metadata_.reserve(size_t(n_kv));
  for (uint64_t i = 0; i < n_kv; ++i) {
    const uint64_t at = r.pos();
    r.set_context("metadata entry #" + std::to_string(i));
    std::string key = r.read_string("key");
    r.set_context("metadata key '" + key + "'");
    if (key_index_.count(key)) r.error(codes::kGgufDuplicate, "duplicate metadata key", at);
    GgufValue value;
    const uint64_t value_at = r.pos();
    r.read_value(r.read_value_type("value type"), 0, value);
    if (key == "general.alignment") {
      // GGUF spec: general.alignment is a uint32 and a power of two.
      if (value.type != GgufValueType::UINT32)
        r.error(codes::kGgufBadValue,
                std::string("must be uint32, found ") + value_type_name(uint32_t(value.type)), value_at);
      if (value.u64 == 0 || (value.u64 & (value.u64 - 1)) != 0)
        r.error(codes::kGgufBadValue, "must be a nonzero power of two, found " + std::to_string(value.u64), value_at);
      alignment_ = value.u64;
    }
    key_index_.emplace(key, metadata_.size());
    metadata_.emplace_back(std::move(key), std::move(value));
  }

  tensors_.reserve(size_t(n_tensors));
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo t;
    const uint64_t at = r.pos();
    r.set_context("tensor info #" + std::to_string(i));
    t.name = r.read_string("tensor name");
    r.set_context("tensor '" + t.name + "'");
    if (tensor_index_.count(t.name)) r.error(codes::kGgufDuplicate, "duplicate tensor name", at);

    const uint64_t dims_at = r.pos();
    const uint32_t n_dims = r.read<uint32_t>("n_dims");
    if (n_dims == 0 || n_dims > kMaxDims)
      r.error(codes::kGgufBadTensorInfo, "n_dims is " + std::to_string(n_dims) + ", must be 1 to 4", dims_at);
    uint64_t n_elements = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t ne_at = r.pos();
      const uint64_t ne = r.read<uint64_t>("dimension");
      // Dimensions are int64 in ggml: a value of 2^63 or more is negative there.
      if (ne == 0 || ne > uint64_t(std::numeric_limits<int64_t>::max()))
        r.error(codes::kGgufBadTensorInfo,
                "dimension " + std::to_string(d) + " is " + std::to_string(int64_t(ne)) + ", must be positive", ne_at);
      if (mul_overflows(n_elements, ne, uint64_t(std::numeric_limits<int64_t>::max())))
        r.error(codes::kGgufBadTensorInfo, "element count overflows int64", ne_at);
      n_elements *= ne;
      t.ne.push_back(int64_t(ne));
    }

    const uint64_t type_at = r.pos();
    t.type_id = r.read<uint32_t>("tensor type");
    const TypeTraits* traits = find_type_traits(t.type_id);
    if (!traits)
      r.error(codes::kGgufUnknownTensorType, "unknown tensor type id " + std::to_string(t.type_id), type_at);
    t.type = traits->type;
    if (t.ne[0] % traits->block_size != 0)
      r.error(codes::kGgufBadTensorInfo,
              "ne[0] = " + std::to_string(t.ne[0]) + " is not a multiple of the " + traits->name +
                  " block size " + std::to_string(traits->block_size),
              dims_at + 4);
    // row_bytes itself does not guard against overflow: bound the block count first.
    const uint64_t blocks = uint64_t(t.ne[0] / traits->block_size);
    const uint64_t max_u64 = std::numeric_limits<uint64_t>::max();
    if (mul_overflows(blocks, traits->block_bytes, max_u64 - traits->row_meta_bytes))
      r.error(codes::kGgufBadTensorInfo, "row size overflows", dims_at + 4);
    const uint64_t row = row_bytes(t.type, t.ne[0]);
    const uint64_t rows = n_elements / uint64_t(t.ne[0]);
    if (mul_overflows(row, rows, max_u64)) r.error(codes::kGgufBadTensorInfo, "byte size overflows", dims_at + 4);
    t.nbytes = row * rows;

    const uint64_t offset_at = r.pos();
    t.offset = r.read<uint64_t>("tensor data offset");
    if (t.offset % alignment_ != 0)
      r.error(codes::kGgufBadTensorInfo,
              "data offset " + std::to_string(t.offset) + " is not a multiple of the alignment " +
                  std::to_string(alignment_),
              offset_at);
    tensor_index_.emplace(t.name, tensors_.size());
    tensors_.push_back(std::move(t));
  }

  // GGUF spec: the data section starts at the end of the header padded to the alignment.
  // pos <= size and alignment < 2^32, so this cannot overflow.
  data_offset_ = (r.pos() + alignment_ - 1) / alignment_ * alignment_;
  const uint64_t available = size_ > data_offset_ ? size_ - data_offset_ : 0;
  for (GgufTensorInfo& t : tensors_) {
    if (t.offset > available || t.nbytes > available - t.offset)
      fail(codes::kGgufTensorOutOfBounds,
           "tensor '" + t.name + "': data at offset " + std::to_string(t.offset) + " (" + std::to_string(t.nbytes) +
               " bytes) relative to the data section at byte " + std::to_string(data_offset_) +
               " runs past the end of the file (size " + std::to_string(size_) + ")");
    t.data = base_ + data_offset_ + t.offset;
  }

  std::vector<const GgufTensorInfo*> by_offset;
  by_offset.reserve(tensors_.size());
  for (const GgufTensorInfo& t : tensors_) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const GgufTensorInfo* a, const GgufTensorInfo* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const GgufTensorInfo& a = *by_offset[i - 1];
    const GgufTensorInfo& b = *by_offset[i];
    if (a.offset + a.nbytes > b.offset)  // both are within the file: no overflow
      fail(codes::kGgufTensorOverlap,
           "tensors '" + a.name + "' [" + std::to_string(a.offset) + ", " + std::to_string(a.offset + a.nbytes) +
               ") and '" + b.name + "' [" + std::to_string(b.offset) + ", " + std::to_string(b.offset + b.nbytes) +
               ") overlap in the data section");
  }
}

}  // namespace deepmla
