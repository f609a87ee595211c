// GGUF reader tests: images are built in memory by a tiny writer so that every error
// code can be produced exactly, then parsed with GgufFile::parse (and open for I/O).
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "deepmla/error.hpp"
#include "deepmla/gguf.hpp"
#include "test.hpp"

using namespace deepmla;
using VT = GgufValueType;

namespace {

// Little-endian byte sink.
struct Bytes {
  std::vector<uint8_t> b;
  template <class T>
  size_t put(T v) {
    const size_t at = b.size();
    b.resize(at + sizeof(T));
    std::memcpy(b.data() + at, &v, sizeof(T));
    return at;
  }
  size_t str(const std::string& s) {
    const size_t at = put<uint64_t>(s.size());
    b.insert(b.end(), s.begin(), s.end());
    return at;
  }
};

// Assembles header, metadata, tensor infos and data. Nothing is validated, so any
// malformed field can be written on purpose.
struct Builder {
  uint32_t version = 3;
  uint64_t alignment = 32;  // only used to pad; write general.alignment to change it
  uint64_t n_kv = 0, n_tensors = 0;
  Bytes kv, ti;
  std::vector<uint8_t> data;

  // Writes a key and value type; the caller writes the value into `kv`.
  Bytes& key(const std::string& k, VT type) { return key_raw(k, uint32_t(type)); }
  Bytes& key_raw(const std::string& k, uint32_t type) {
    kv.str(k);
    kv.put<uint32_t>(type);
    ++n_kv;
    return kv;
  }
  void tensor(const std::string& name, uint32_t type, const std::vector<uint64_t>& ne, uint64_t offset) {
    ti.str(name);
    ti.put<uint32_t>(uint32_t(ne.size()));
    for (uint64_t d : ne) ti.put<uint64_t>(d);
    ti.put<uint32_t>(type);
    ti.put<uint64_t>(offset);
    ++n_tensors;
  }
  // An F32 tensor whose data is appended (aligned) with values base, base+1, ...
  void f32(const std::string& name, const std::vector<uint64_t>& ne, float base = 0) {
    while (data.size() % alignment) data.push_back(0);
    uint64_t n = 1;
    for (uint64_t d : ne) n *= d;
    tensor(name, 0, ne, data.size());
    for (uint64_t i = 0; i < n; ++i) {
      const float v = base + float(i);
      const uint8_t* p = reinterpret_cast<const uint8_t*>(&v);
      data.insert(data.end(), p, p + 4);
    }
  }
  std::vector<uint8_t> build() const {
    Bytes out;
    out.b = {'G', 'G', 'U', 'F'};
    out.put<uint32_t>(version);
    out.put<uint64_t>(n_tensors);
    out.put<uint64_t>(n_kv);
    out.b.insert(out.b.end(), kv.b.begin(), kv.b.end());
    out.b.insert(out.b.end(), ti.b.begin(), ti.b.end());
    while (out.b.size() % alignment) out.b.push_back(0);
    out.b.insert(out.b.end(), data.begin(), data.end());
    return out.b;
  }
};

std::unique_ptr<GgufFile> parse(const std::vector<uint8_t>& image) { return GgufFile::parse(image.data(), image.size()); }

template <class T>
void patch(std::vector<uint8_t>& image, size_t at, T v) {
  std::memcpy(image.data() + at, &v, sizeof(T));
}

// A valid builder with one key and two F32 tensors, for tests that break one thing.
Builder small() {
  Builder b;
  b.key("general.architecture", VT::STRING).str("deepseek2");
  b.f32("a", {4, 2});
  b.f32("b", {8});
  return b;
}

// Every value type, arrays of every element type, nested arrays, alignment 64, and
// tensors of three types.
Builder full_builder(uint32_t version) {
  Builder b;
  b.version = version;
  b.alignment = 64;
  b.key("general.alignment", VT::UINT32).put<uint32_t>(64);
  b.key("u8", VT::UINT8).put<uint8_t>(250);
  b.key("i8", VT::INT8).put<int8_t>(-100);
  b.key("u16", VT::UINT16).put<uint16_t>(65000);
  b.key("i16", VT::INT16).put<int16_t>(-32000);
  b.key("u32", VT::UINT32).put<uint32_t>(4000000000u);
  b.key("i32", VT::INT32).put<int32_t>(-2000000000);
  b.key("f32", VT::FLOAT32).put<float>(1.5f);
  b.key("bool", VT::BOOL).put<uint8_t>(1);
  b.key("str", VT::STRING).str("héllo");
  b.key("u64", VT::UINT64).put<uint64_t>(18446744073709551615ull);
  b.key("i64", VT::INT64).put<int64_t>(-9007199254740993ll);
  b.key("f64", VT::FLOAT64).put<double>(-0.25);
  Bytes& strings = b.key("arr.str", VT::ARRAY);
  strings.put<uint32_t>(uint32_t(VT::STRING));
  strings.put<uint64_t>(3);
  for (const char* s : {"a", "", "ccc"}) strings.str(s);
  Bytes& empty = b.key("arr.empty", VT::ARRAY);
  empty.put<uint32_t>(uint32_t(VT::FLOAT32));
  empty.put<uint64_t>(0);
  Bytes& i32s = b.key("arr.i32", VT::ARRAY);
  i32s.put<uint32_t>(uint32_t(VT::INT32));
  i32s.put<uint64_t>(2);
  i32s.put<int32_t>(-1);
  i32s.put<int32_t>(7);
  // [[1, 2], [3]] as an array of arrays of uint16.
  Bytes& nested = b.key("arr.nested", VT::ARRAY);
  nested.put<uint32_t>(uint32_t(VT::ARRAY));
  nested.put<uint64_t>(2);
  nested.put<uint32_t>(uint32_t(VT::UINT16));
  nested.put<uint64_t>(2);
  nested.put<uint16_t>(1);
  nested.put<uint16_t>(2);
  nested.put<uint32_t>(uint32_t(VT::UINT16));
  nested.put<uint64_t>(1);
  nested.put<uint16_t>(3);
  b.f32("f32.weight", {4, 3}, 10);
  // Q8_0 [64, 2]: 2 rows of 2 blocks of 34 bytes.
  while (b.data.size() % 64) b.data.push_back(0);
  b.tensor("q8.weight", 8, {64, 2}, b.data.size());
  b.data.resize(b.data.size() + 4 * 34, 0x11);
  while (b.data.size() % 64) b.data.push_back(0);
  b.tensor("bf16.weight", 30, {2, 1, 1, 3}, b.data.size());
  b.data.resize(b.data.size() + 12, 0x22);
  return b;
}

std::vector<uint8_t> full_image(uint32_t version) { return full_builder(version).build(); }

std::string temp_path(const char* tag) {
  return "/tmp/deepmla_test_gguf_" + std::to_string(::getpid()) + "_" + tag + ".gguf";
}

}  // namespace

TEST(gguf_round_trip_all_value_types) {
  for (uint32_t version : {2u, 3u}) {
    const std::vector<uint8_t> image = full_image(version);
    auto f = parse(image);
    CHECK(f->version() == version);
    CHECK(f->alignment() == 64);
    CHECK(f->data_offset() % 64 == 0);
    CHECK(f->file_size() == image.size());
    CHECK(f->metadata().size() == 17);
    CHECK(f->metadata()[1].first == "u8");  // file order is kept
    CHECK(f->find_key("u8")->u64 == 250);
    CHECK(f->find_key("i8")->i64 == -100);
    CHECK(f->find_key("u16")->u64 == 65000);
    CHECK(f->find_key("i16")->i64 == -32000);
    CHECK(f->find_key("u32")->u64 == 4000000000u);
    CHECK(f->find_key("i32")->i64 == -2000000000);
    CHECK(f->find_key("f32")->f64 == 1.5);
    CHECK(f->find_key("bool")->type == VT::BOOL && f->find_key("bool")->u64 == 1);
    CHECK(f->find_key("str")->str == "héllo");
    CHECK(f->find_key("u64")->u64 == 18446744073709551615ull);
    CHECK(f->find_key("i64")->i64 == -9007199254740993ll);
    CHECK(f->find_key("f64")->f64 == -0.25);
    const GgufValue* strings = f->find_key("arr.str");
    CHECK(strings->type == VT::ARRAY && strings->array_type == VT::STRING);
    CHECK(strings->array.size() == 3 && strings->array[0].str == "a" && strings->array[1].str.empty() &&
          strings->array[2].str == "ccc");
    CHECK(f->find_key("arr.empty")->array.empty() && f->find_key("arr.empty")->array_type == VT::FLOAT32);
    CHECK(f->find_key("arr.i32")->array[0].i64 == -1 && f->find_key("arr.i32")->array[1].i64 == 7);
    const GgufValue* nested = f->find_key("arr.nested");
    CHECK(nested->array_type == VT::ARRAY && nested->array.size() == 2);
    CHECK(nested->array[0].array_type == VT::UINT16 && nested->array[0].array.size() == 2);
    CHECK(nested->array[0].array[1].u64 == 2 && nested->array[1].array[0].u64 == 3);
    CHECK(f->find_key("missing") == nullptr);

    CHECK(f->tensors().size() == 3);
    const GgufTensorInfo* w = f->find_tensor("f32.weight");
    CHECK(w && w->type == TensorType::F32 && w->ne == std::vector<int64_t>({4, 3}) && w->nbytes == 48);
    float first = 0, last = 0;
    std::memcpy(&first, w->data, 4);
    std::memcpy(&last, w->data + 44, 4);
    CHECK(first == 10 && last == 21);
    CHECK(w->data == image.data() + f->data_offset() + w->offset);
    const GgufTensorInfo* q = f->find_tensor("q8.weight");
    CHECK(q && q->type == TensorType::Q8_0 && q->nbytes == 4 * 34 && q->offset == 64 && q->data[0] == 0x11);
    const GgufTensorInfo* h = f->find_tensor("bf16.weight");
    CHECK(h && h->type_id == 30 && h->ne.size() == 4 && h->nbytes == 12 && h->offset == 256);
    CHECK(f->find_tensor("nope") == nullptr);
  }
}

TEST(gguf_truncated_at_every_offset) {
  const Builder b = full_builder(3);
  const std::vector<uint8_t> image = b.build();
  const size_t header_end = 24 + b.kv.b.size() + b.ti.b.size();
  auto f = parse(image);
  // The last tensor ends the file, so every shorter prefix is invalid: inside the header
  // it is truncated, after it a tensor's data runs past the end.
  CHECK(f->data_offset() + f->find_tensor("bf16.weight")->offset + 12 == image.size());
  for (size_t n = 0; n < image.size(); ++n) {
    const char* expected = n < header_end ? codes::kGgufTruncated : codes::kGgufTensorOutOfBounds;
    std::string got = "<none>";
    try {
      // A copy of exactly n bytes, so that an overread is caught by ASan.
      const std::vector<uint8_t> prefix(image.begin(), image.begin() + n);
      GgufFile::parse(prefix.data(), prefix.size());
    } catch (const Error& e) {
      got = e.code();
    }
    if (got != expected) {
      std::fprintf(stderr, "  prefix of %zu bytes gave %s, expected %s\n", n, got.c_str(), expected);
      CHECK(false);
    }
  }
}

TEST(gguf_empty_and_short) {
  CHECK_THROWS_CODE(GgufFile::parse(nullptr, 0), codes::kGgufTruncated);
  const uint8_t gg[] = {'G', 'G'};
  CHECK_THROWS_CODE(GgufFile::parse(gg, 2), codes::kGgufTruncated);
  const uint8_t gx[] = {'G', 'X'};
  CHECK_THROWS_CODE(GgufFile::parse(gx, 2), codes::kGgufBadMagic);
}

TEST(gguf_bad_magic) {
  std::vector<uint8_t> image = small().build();
  image[3] = 'X';
  CHECK_THROWS_CODE(parse(image), codes::kGgufBadMagic);
}

TEST(gguf_versions) {
  Builder b = small();
  for (uint32_t v : {0u, 1u, 4u, 0x03000000u, 0x02000000u}) {
    b.version = v;
    CHECK_THROWS_CODE(parse(b.build()), codes::kGgufUnsupportedVersion);
  }
  b.version = 0x03000000u;
  try {
    parse(b.build());
  } catch (const Error& e) {
    CHECK(std::strstr(e.what(), "big-endian") != nullptr);
  }
  b.version = 2;
  CHECK(parse(b.build())->version() == 2);
}

TEST(gguf_bad_value_type) {
  Builder b = small();
  b.key_raw("x", 13).put<uint32_t>(0);
  CHECK_THROWS_CODE(parse(b.build()), codes::kGgufBadValueType);
  Builder c = small();
  Bytes& a = c.key("arr", VT::ARRAY);
  a.put<uint32_t>(99);
  a.put<uint64_t>(0);
  CHECK_THROWS_CODE(parse(c.build()), codes::kGgufBadValueType);
}

TEST(gguf_duplicates) {
  Builder b = small();
  b.key("general.architecture", VT::STRING).str("again");
  CHECK_THROWS_CODE(parse(b.build()), codes::kGgufDuplicate);
  try {
    parse(b.build());
  } catch (const Error& e) {
    CHECK(std::strstr(e.what(), "general.architecture") != nullptr);
  }
  Builder c = small();
  c.f32("a", {4});
  CHECK_THROWS_CODE(parse(c.build()), codes::kGgufDuplicate);
}

TEST(gguf_bad_tensor_info) {
  for (const std::vector<uint64_t>& ne : std::vector<std::vector<uint64_t>>{
           {}, {1, 1, 1, 1, 1}, {4, 0}, {0}, {1ull << 63}, {1ull << 32, 1ull << 32}, {1ull << 62}}) {
    Builder b = small();
    b.tensor("bad", 0, ne, 1024);
    CHECK_THROWS_CODE(parse(b.build()), codes::kGgufBadTensorInfo);
  }
  Builder q = small();
  q.tensor("q", 8, {16, 2}, 1024);  // Q8_0 blocks hold 32 values
  CHECK_THROWS_CODE(parse(q.build()), codes::kGgufBadTensorInfo);
  Builder m = small();
  m.tensor("m", 0, {4}, 1028);  // not a multiple of 32
  CHECK_THROWS_CODE(parse(m.build()), codes::kGgufBadTensorInfo);
}

TEST(gguf_unknown_tensor_type) {
  Builder b = small();
  b.tensor("t", 12, {256}, 1024);  // Q4_K: not handled by deepmla yet
  CHECK_THROWS_CODE(parse(b.build()), codes::kGgufUnknownTensorType);
  Builder c = small();
  c.tensor("t", 0xffffffffu, {1}, 1024);
  CHECK_THROWS_CODE(parse(c.build()), codes::kGgufUnknownTensorType);
}

TEST(gguf_tensor_out_of_bounds) {
  Builder b = small();
  b.tensor("far", 0, {8}, 1ull << 40);
  CHECK_THROWS_CODE(parse(b.build()), codes::kGgufTensorOutOfBounds);
  Builder c = small();
  c.tensor("wrap", 0, {8}, 0xffffffffffffffe0ull);  // offset + nbytes would wrap
  CHECK_THROWS_CODE(parse(c.build()), codes::kGgufTensorOutOfBounds);
  std::vector<uint8_t> image = small().build();
  image.pop_back();  // the data section is one byte short
  CHECK_THROWS_CODE(parse(image), codes::kGgufTensorOutOfBounds);
}

TEST(gguf_tensor_overlap) {
  Builder b = small();
  b.tensor("c", 0, {4}, 0);  // inside "a"
  CHECK_THROWS_CODE(parse(b.build()), codes::kGgufTensorOverlap);
  Builder same_start = small();
  same_start.tensor("d", 0, {1}, 32);  // shares its first byte with "b"
  CHECK_THROWS_CODE(parse(same_start.build()), codes::kGgufTensorOverlap);
}

TEST(gguf_alignment_values) {
  for (uint32_t bad : {0u, 3u, 48u}) {
    Builder b;
    b.key("general.alignment", VT::UINT32).put<uint32_t>(bad);
    CHECK_THROWS_CODE(parse(b.build()), codes::kGgufBadValue);
  }
  Builder wrong_type;
  wrong_type.key("general.alignment", VT::UINT64).put<uint64_t>(32);
  CHECK_THROWS_CODE(parse(wrong_type.build()), codes::kGgufBadValue);
  Builder big;
  big.alignment = 4096;
  big.key("general.alignment", VT::UINT32).put<uint32_t>(4096);
  big.f32("x", {3});
  auto f = parse(big.build());
  CHECK(f->alignment() == 4096 && f->data_offset() == 4096);
}

TEST(gguf_huge_counts_fail_fast) {
  const uint64_t huge = 1ull << 63;
  Builder kv = small();
  kv.n_kv = huge;
  CHECK_THROWS_CODE(parse(kv.build()), codes::kGgufTruncated);
  Builder tensors = small();
  tensors.n_tensors = huge;
  CHECK_THROWS_CODE(parse(tensors.build()), codes::kGgufTruncated);
  for (VT element : {VT::STRING, VT::UINT8, VT::ARRAY, VT::FLOAT64}) {
    Builder b = small();
    Bytes& a = b.key("arr", VT::ARRAY);
    a.put<uint32_t>(uint32_t(element));
    a.put<uint64_t>(huge);
    CHECK_THROWS_CODE(parse(b.build()), codes::kGgufTruncated);
  }
  Builder s = small();
  s.key("s", VT::STRING).put<uint64_t>(huge);
  CHECK_THROWS_CODE(parse(s.build()), codes::kGgufTruncated);
  Builder key_len = small();
  key_len.kv.put<uint64_t>(~0ull);
  key_len.n_kv++;
  CHECK_THROWS_CODE(parse(key_len.build()), codes::kGgufTruncated);
  Builder name_len = small();
  name_len.ti.put<uint64_t>(~0ull);
  name_len.n_tensors++;
  CHECK_THROWS_CODE(parse(name_len.build()), codes::kGgufTruncated);
}

TEST(gguf_nesting_is_bounded) {
  Builder b;
  Bytes& a = b.key("deep", VT::ARRAY);
  for (int i = 0; i < 100; ++i) {
    a.put<uint32_t>(uint32_t(VT::ARRAY));
    a.put<uint64_t>(1);
  }
  a.put<uint32_t>(uint32_t(VT::UINT8));
  a.put<uint64_t>(0);
  CHECK_THROWS_CODE(parse(b.build()), codes::kGgufBadValue);
}

TEST(gguf_open_files) {
  CHECK_THROWS_CODE(GgufFile::open("/nonexistent/deepmla.gguf"), codes::kIo);
  CHECK_THROWS_CODE(GgufFile::open("/tmp"), codes::kIo);
  const std::vector<uint8_t> image = full_image(3);
  const std::string path = temp_path("valid");
  FILE* out = std::fopen(path.c_str(), "wb");
  CHECK(out != nullptr);
  if (!out) return;
  std::fwrite(image.data(), 1, image.size(), out);
  std::fclose(out);
  {
    auto f = GgufFile::open(path);
    CHECK(f->tensors().size() == 3 && f->file_size() == image.size());
    float first = 0;
    std::memcpy(&first, f->find_tensor("f32.weight")->data, 4);
    CHECK(first == 10);
  }
  {
    // Resident: the same bytes in the process's own memory, read with progress.
    auto mapped = GgufFile::open(path);
    uint64_t last = 0, calls = 0;
    auto resident = GgufFile::open_resident(path, [&](uint64_t done, uint64_t total) {
      CHECK(total == image.size() && done <= total && done >= last);
      last = done;
      ++calls;
      return true;
    });
    CHECK(resident->resident() && !mapped->resident());
    CHECK(last == image.size() && calls >= 2);
    CHECK(resident->file_size() == mapped->file_size() && std::memcmp(resident->base(), mapped->base(), image.size()) == 0);
    CHECK(resident->tensors().size() == 3 && resident->find_tensor("f32.weight")->data != mapped->find_tensor("f32.weight")->data);
    CHECK_THROWS_CODE(GgufFile::open_resident(path, [](uint64_t, uint64_t) { return false; }), codes::kAborted);
    CHECK_THROWS_CODE(GgufFile::open_resident("/nonexistent/deepmla.gguf", nullptr), codes::kIo);
    CHECK_THROWS_CODE(GgufFile::open_resident("/tmp", nullptr), codes::kIo);
  }
  const std::string empty = temp_path("empty");
  std::fclose(std::fopen(empty.c_str(), "wb"));
  CHECK_THROWS_CODE(GgufFile::open(empty), codes::kGgufTruncated);
  CHECK_THROWS_CODE(GgufFile::open_resident(empty, nullptr), codes::kGgufTruncated);
  try {
    GgufFile::open(empty);
  } catch (const Error& e) {
    CHECK(std::strstr(e.what(), empty.c_str()) != nullptr);  // errors name the file
  }
  std::remove(path.c_str());
  std::remove(empty.c_str());
}

TEST(gguf_random_corruption_never_crashes) {
  // Deterministic byte mutations of a valid image: each must parse or throw a GGUF_*
  // error, never crash or throw anything else (run under ASan in the sanitizer build).
  const std::vector<uint8_t> image = full_image(3);
  uint64_t state = 0x9e3779b97f4a7c15ull;
  auto next = [&state]() {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return uint32_t(state >> 33);
  };
  for (int round = 0; round < 20000; ++round) {
    std::vector<uint8_t> bytes = image;
    const int flips = 1 + int(next() % 4);
    for (int i = 0; i < flips; ++i) bytes[next() % bytes.size()] = uint8_t(next());
    bytes.resize(bytes.size() - next() % 8);
    try {
      GgufFile::parse(bytes.data(), bytes.size());
    } catch (const Error& e) {
      CHECK(e.code().rfind("GGUF_", 0) == 0);
    }
  }
}
