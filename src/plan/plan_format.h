// The plan file's fixed header and checksum (the byte layout is in FORMAT.md):
//
//   [header, 64 bytes][weights section, 64-byte aligned tensors][flatbuffer (plan.fbs)]
//
// Shared by the writer, the reader and tests that craft damaged plans.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace kiln {

inline constexpr char kPlanMagic[8] = {'K', 'I', 'L', 'N', 'P', 'L', 'A', 'N'};
// The format this kiln writes and the newest it reads. Bump it (and FORMAT.md) on every
// change to the header or plan.fbs.
inline constexpr uint32_t kPlanFormatVersion = 3;
inline constexpr uint64_t kPlanHeaderSize = 64;
// Weights and the flatbuffer start at multiples of this (from the start of the file).
inline constexpr uint64_t kPlanAlignment = 64;
// Nested graphs (epilogues, If/Loop/Scan bodies) deeper than this are refused.
inline constexpr int kMaxPlanGraphDepth = 16;
// Sequence/optional type wrappers deeper than this are refused.
inline constexpr int kMaxPlanTypeDepth = 8;

// Header fields, all little-endian on disk.
struct PlanHeader {
  uint32_t format_version = kPlanFormatVersion;
  uint32_t header_size = static_cast<uint32_t>(kPlanHeaderSize);
  uint64_t weights_offset = 0;
  uint64_t weights_size = 0;
  uint64_t flatbuffer_offset = 0;
  uint64_t flatbuffer_size = 0;
  uint64_t file_size = 0;
  uint64_t checksum = 0;  // over the whole file except these 8 bytes (PlanChecksum)
};

// Byte offset of PlanHeader::checksum in the file (it is the header's last field).
inline constexpr size_t kPlanChecksumOffset = 56;

// Encodes `h` with the magic into the first kPlanHeaderSize bytes of `out`.
void EncodePlanHeader(const PlanHeader& h, uint8_t* out);
// Decodes the fields after the magic (the caller checks the magic and the size first).
PlanHeader DecodePlanHeader(const uint8_t* in);
// True when `data` starts with the plan magic.
bool HasPlanMagic(const uint8_t* data, size_t size);

// Streaming checksum over a whole file, skipping the checksum field. From format version 3
// (kPlanBlockChecksumVersion) it is the XXH3-64 of the little-endian XXH3-64 digests of the
// consecutive kPlanChecksumBlock-byte blocks of that byte stream, so a reader can hash the
// blocks of a large plan on several cores; before, the XXH3-64 of the stream itself.
inline constexpr uint32_t kPlanBlockChecksumVersion = 3;
inline constexpr size_t kPlanChecksumBlock = size_t{4} << 20;
class PlanChecksum {
 public:
  explicit PlanChecksum(uint32_t format_version = kPlanFormatVersion);
  ~PlanChecksum();
  PlanChecksum(const PlanChecksum&) = delete;
  PlanChecksum& operator=(const PlanChecksum&) = delete;
  // Feeds the next `size` bytes of the file (at file offset `pos_`, tracked internally).
  void Update(const void* data, size_t size);
  uint64_t Digest() const;

 private:
  void Stream(const uint8_t* p, size_t n);  // bytes of the stream (checksum field left out)
  void* state_;        // XXH3_state_t: the stream (legacy) or the block digests (blocked)
  void* block_ = nullptr;  // XXH3_state_t of the current block (blocked only)
  size_t in_block_ = 0;
  uint64_t pos_ = 0;
};

// The checksum of a complete plan file held in memory, for the format version its header
// names (blocks hashed on up to 4 threads for a large file).
uint64_t ComputePlanChecksum(std::span<const uint8_t> file);
// Recomputes and stores the checksum of a plan file in memory (tests use it to damage a
// plan past the checksum, so the verifier and the semantic checks see the damage).
void RestampPlanChecksum(std::vector<uint8_t>& file);

inline uint64_t AlignPlanOffset(uint64_t n) { return (n + kPlanAlignment - 1) / kPlanAlignment * kPlanAlignment; }

}  // namespace kiln
