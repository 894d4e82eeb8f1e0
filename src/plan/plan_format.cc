#include "plan/plan_format.h"

#include <xxhash.h>

#include <cstring>
#include <new>

namespace kiln {

namespace {

void Put32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
void Put64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint32_t Get32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
uint64_t Get64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

void EncodePlanHeader(const PlanHeader& h, uint8_t* out) {
  std::memset(out, 0, kPlanHeaderSize);
  std::memcpy(out, kPlanMagic, sizeof kPlanMagic);
  Put32(out + 8, h.format_version);
  Put32(out + 12, h.header_size);
  Put64(out + 16, h.weights_offset);
  Put64(out + 24, h.weights_size);
  Put64(out + 32, h.flatbuffer_offset);
  Put64(out + 40, h.flatbuffer_size);
  Put64(out + 48, h.file_size);
  Put64(out + kPlanChecksumOffset, h.checksum);
}

PlanHeader DecodePlanHeader(const uint8_t* in) {
  PlanHeader h;
  h.format_version = Get32(in + 8);
  h.header_size = Get32(in + 12);
  h.weights_offset = Get64(in + 16);
  h.weights_size = Get64(in + 24);
  h.flatbuffer_offset = Get64(in + 32);
  h.flatbuffer_size = Get64(in + 40);
  h.file_size = Get64(in + 48);
  h.checksum = Get64(in + kPlanChecksumOffset);
  return h;
}

bool HasPlanMagic(const uint8_t* data, size_t size) {
  return size >= sizeof kPlanMagic && std::memcmp(data, kPlanMagic, sizeof kPlanMagic) == 0;
}

PlanChecksum::PlanChecksum() : state_(XXH3_createState()) {
  if (state_ == nullptr) throw std::bad_alloc();
  XXH3_64bits_reset(static_cast<XXH3_state_t*>(state_));
}

PlanChecksum::~PlanChecksum() { XXH3_freeState(static_cast<XXH3_state_t*>(state_)); }

void PlanChecksum::Update(const void* data, size_t size) {
  // The 8 checksum bytes are left out wherever the caller's chunks fall around them.
  const auto* p = static_cast<const uint8_t*>(data);
  auto* st = static_cast<XXH3_state_t*>(state_);
  const uint64_t skip_begin = kPlanChecksumOffset, skip_end = kPlanChecksumOffset + 8;
  const uint64_t begin = pos_, end = pos_ + size;
  if (end <= skip_begin || begin >= skip_end) {
    XXH3_64bits_update(st, p, size);
  } else {
    if (begin < skip_begin) XXH3_64bits_update(st, p, static_cast<size_t>(skip_begin - begin));
    if (end > skip_end) XXH3_64bits_update(st, p + (skip_end - begin), static_cast<size_t>(end - skip_end));
  }
  pos_ = end;
}

uint64_t PlanChecksum::Digest() const { return XXH3_64bits_digest(static_cast<const XXH3_state_t*>(state_)); }

uint64_t ComputePlanChecksum(std::span<const uint8_t> file) {
  PlanChecksum c;
  c.Update(file.data(), file.size());
  return c.Digest();
}

void RestampPlanChecksum(std::vector<uint8_t>& file) {
  if (file.size() < kPlanHeaderSize) return;
  Put64(file.data() + kPlanChecksumOffset, ComputePlanChecksum(file));
}

}  // namespace kiln
