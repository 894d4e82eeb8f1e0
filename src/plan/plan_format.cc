#include "plan/plan_format.h"

#include <sys/mman.h>
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <new>
#include <thread>
#include <vector>

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

namespace {
XXH3_state_t* NewXxh3() {
  XXH3_state_t* st = XXH3_createState();
  if (st == nullptr) throw std::bad_alloc();
  XXH3_64bits_reset(st);
  return st;
}
void AddDigest(XXH3_state_t* outer, uint64_t digest) {
  uint8_t le[8];
  Put64(le, digest);
  XXH3_64bits_update(outer, le, sizeof le);
}
}  // namespace

PlanChecksum::PlanChecksum(uint32_t format_version) : state_(NewXxh3()) {
  if (format_version >= kPlanBlockChecksumVersion) block_ = NewXxh3();
}

PlanChecksum::~PlanChecksum() {
  XXH3_freeState(static_cast<XXH3_state_t*>(state_));
  if (block_ != nullptr) XXH3_freeState(static_cast<XXH3_state_t*>(block_));
}

void PlanChecksum::Stream(const uint8_t* p, size_t n) {
  auto* st = static_cast<XXH3_state_t*>(state_);
  if (block_ == nullptr) {
    XXH3_64bits_update(st, p, n);
    return;
  }
  auto* blk = static_cast<XXH3_state_t*>(block_);
  while (n > 0) {
    const size_t take = std::min(n, kPlanChecksumBlock - in_block_);
    XXH3_64bits_update(blk, p, take);
    p += take;
    n -= take;
    in_block_ += take;
    if (in_block_ == kPlanChecksumBlock) {
      AddDigest(st, XXH3_64bits_digest(blk));
      XXH3_64bits_reset(blk);
      in_block_ = 0;
    }
  }
}

void PlanChecksum::Update(const void* data, size_t size) {
  // The 8 checksum bytes are left out wherever the caller's chunks fall around them.
  const auto* p = static_cast<const uint8_t*>(data);
  const uint64_t skip_begin = kPlanChecksumOffset, skip_end = kPlanChecksumOffset + 8;
  const uint64_t begin = pos_, end = pos_ + size;
  if (end <= skip_begin || begin >= skip_end) {
    Stream(p, size);
  } else {
    if (begin < skip_begin) Stream(p, static_cast<size_t>(skip_begin - begin));
    if (end > skip_end) Stream(p + (skip_end - begin), static_cast<size_t>(end - skip_end));
  }
  pos_ = end;
}

uint64_t PlanChecksum::Digest() const {
  const auto* st = static_cast<const XXH3_state_t*>(state_);
  if (block_ == nullptr || in_block_ == 0) return XXH3_64bits_digest(st);
  // The last, partial block: its digest goes into a copy of the outer state.
  XXH3_state_t* last = NewXxh3();
  XXH3_copyState(last, st);
  AddDigest(last, XXH3_64bits_digest(static_cast<const XXH3_state_t*>(block_)));
  const uint64_t d = XXH3_64bits_digest(last);
  XXH3_freeState(last);
  return d;
}

uint64_t ComputePlanChecksum(std::span<const uint8_t> file) {
  const uint32_t version = file.size() >= 12 ? Get32(file.data() + 8) : kPlanFormatVersion;
  const size_t block = kPlanChecksumBlock;
  if (version < kPlanBlockChecksumVersion || file.size() <= kPlanChecksumOffset + 8 + 2 * block) {
    PlanChecksum c(version);
    c.Update(file.data(), file.size());
    return c.Digest();
  }
  // Stream byte s is file byte s (s < 56) or s + 8: block i is stream [i*B, (i+1)*B).
  const size_t stream = file.size() - 8, blocks = (stream + block - 1) / block;
  std::vector<uint64_t> digests(blocks);
  auto hash_block = [&](size_t i) {
    const size_t b = i * block, e = std::min(stream, b + block);
#ifdef MADV_POPULATE_READ
    // A mapped file's pages in one call per block rather than a fault each (several times
    // faster; each thread maps its own blocks). A no-op for memory that is not a mapping.
    const uintptr_t page = 4096, lo = reinterpret_cast<uintptr_t>(file.data() + (i == 0 ? 0 : b + 8)) & ~(page - 1);
    const uintptr_t hi = reinterpret_cast<uintptr_t>(file.data() + e + 8);
    (void)::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_POPULATE_READ);
#endif
    if (i == 0) {
      XXH3_state_t* st = NewXxh3();
      XXH3_64bits_update(st, file.data(), kPlanChecksumOffset);
      XXH3_64bits_update(st, file.data() + kPlanChecksumOffset + 8, e - kPlanChecksumOffset);
      digests[0] = XXH3_64bits_digest(st);
      XXH3_freeState(st);
    } else {
      digests[i] = XXH3_64bits(file.data() + b + 8, e - b);
    }
  };
  // Hashing is bound by memory bandwidth and, for a fresh mapping, page-table work: a few
  // threads take a large plan's check from ~18 to ~10 ms on a 2-core machine.
  const size_t threads = std::min<size_t>({4, std::max(1u, std::thread::hardware_concurrency()), blocks});
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t i; (i = next.fetch_add(1)) < blocks;) hash_block(i);
  };
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (std::thread& t : pool) t.join();
  XXH3_state_t* outer = NewXxh3();
  for (uint64_t d : digests) AddDigest(outer, d);
  const uint64_t sum = XXH3_64bits_digest(outer);
  XXH3_freeState(outer);
  return sum;
}

void RestampPlanChecksum(std::vector<uint8_t>& file) {
  if (file.size() < kPlanHeaderSize) return;
  Put64(file.data() + kPlanChecksumOffset, ComputePlanChecksum(file));
}

}  // namespace kiln
