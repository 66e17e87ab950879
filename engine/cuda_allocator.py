"""A simulator of torch's CUDA caching allocator (c10/cuda/CUDACachingAllocator.cpp), fed the
traced allocation events, so MemLens predicts `max_memory_reserved` - what actually runs out -
and the segment layout, not only the bytes tensors hold.

The rules it follows, each named where it acts:
- `round_size`: requests round up to 512 B (kMinBlockSize), or to a power-of-two division under
  `roundup_power2_divisions`;
- pools: requests <= 1 MiB (kSmallSize) come from the small pool, carved from 2 MiB segments
  (kSmallBuffer); larger ones from the large pool: a 20 MiB segment (kLargeBuffer) below
  10 MiB (kMinLargeAlloc), the request rounded up to 2 MiB (kRoundLarge) otherwise;
- `get_free_block`: best fit, the smallest cached block that is large enough (the lowest
  address among equals); with `max_split_size` a request below it never takes a block at or
  above it, and an oversize request takes an oversize block at most `max_non_split_rounding`
  larger;
- `should_split`: a small-pool block (or any block of an expandable segment) is split when 512 B
  or more remain; a large-pool block when the request is below `max_split_size` and more than
  1 MiB remains. An unsplit remainder counts in `allocated_bytes` (torch counts block sizes);
- `free_block`: a freed block merges with free neighbours of its segment;
- `release_cached_blocks`: when a new segment would exceed the capacity, segments with nothing
  allocated are returned (after `release_available_cached_blocks` when `max_split_size` is set)
  and the allocation retried; only then is it an out-of-memory;
- `expandable_segments`: one segment per pool that grows by mapping pages (2 MiB in the small
  pool, 20 MiB in the large one) at its lowest free address; OOM unmaps free pages.
One stream (what a training step uses); no CUDA graphs, no memory fraction.

The simulator takes sizes as requested (the tracer's 512-byte rounding for CUDA is idempotent
under `round_size` for every configuration: tests/engine/test_cuda_allocator.py checks it).
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .alloc_conf import DEFAULT, AllocConf

MIB = 2**20
K_MIN_BLOCK = 512
K_SMALL_SIZE = MIB
K_SMALL_BUFFER = 2 * MIB
K_LARGE_BUFFER = 20 * MIB
K_MIN_LARGE_ALLOC = 10 * MIB
K_ROUND_LARGE = 2 * MIB
_ADDRESS_GAP = 2**40  # segments live far apart: addresses never collide
_ADDRESS_BASE = 2**50  # above any real device address (a replay starts from recorded ones)


class OutOfMemory(Exception):
    """The simulated allocator could not find `size` bytes within the capacity."""

    def __init__(self, size: int):
        super().__init__(size)
        self.size = size


class _Block:
    __slots__ = ("addr", "size", "requested", "small", "allocated", "mapped", "prev", "next", "segment")

    def __init__(self, addr, size, small, segment, mapped=True):
        self.addr, self.size, self.small, self.segment, self.mapped = addr, size, small, segment, mapped
        self.requested = 0
        self.allocated = False
        self.prev = self.next = None

    def is_split(self) -> bool:
        return self.prev is not None or self.next is not None


class _Pool:
    """Free mapped blocks ordered by (size, address), as torch's BlockComparatorSize."""

    def __init__(self, small: bool):
        self.small = small
        self.keys: list[tuple[int, int]] = []
        self.blocks: dict[int, _Block] = {}
        self.unmapped: dict[int, _Block] = {}  # expandable segments: address -> unmapped range

    def insert(self, b: _Block) -> None:
        bisect.insort(self.keys, (b.size, b.addr))
        self.blocks[b.addr] = b

    def remove(self, b: _Block) -> None:
        key = (b.size, b.addr)
        i = bisect.bisect_left(self.keys, key)
        del self.keys[i]
        del self.blocks[b.addr]


# ---- Public API
def round_size(size: int, conf: AllocConf = DEFAULT) -> int:
    """The block size a request of `size` bytes asks the pools for (CUDACachingAllocator::round_size)."""
    if size < K_MIN_BLOCK:
        return K_MIN_BLOCK
    divisions = conf.divisions(size)
    if divisions > 1 and size > K_MIN_BLOCK * divisions:
        return _roundup_power2_next_division(size, divisions)
    return -(-size // K_MIN_BLOCK) * K_MIN_BLOCK


def allocation_size(size: int) -> int:
    """Bytes cudaMalloc'ed for a new segment serving a rounded request (get_allocation_size)."""
    if size <= K_SMALL_SIZE:
        return K_SMALL_BUFFER
    if size < K_MIN_LARGE_ALLOC:
        return K_LARGE_BUFFER
    return -(-size // K_ROUND_LARGE) * K_ROUND_LARGE


class CachingAllocator:
    """One device's caching allocator on one stream: `malloc(key, nbytes)`, `free(key)`."""

    def __init__(self, conf: AllocConf = DEFAULT, capacity_bytes: int | None = None):
        self.conf = conf
        self.capacity = capacity_bytes
        self.pools = {True: _Pool(True), False: _Pool(False)}
        self.live: dict[int, _Block] = {}
        self.segments: dict[int, int] = {}  # segment id -> bytes reserved (mapped)
        self.expandable: dict[bool, int] = {}  # pool -> its expandable segment id
        self.allocated_bytes = 0
        self.reserved_bytes = 0
        self.peak_allocated_bytes = 0
        self.peak_reserved_bytes = 0
        self.cuda_mallocs = 0
        self.retries = 0  # cache flushes forced by the capacity (num_alloc_retries)
        self._next_segment = 0
        # Where cudaMalloc puts the next segment (replays use the recorded addresses: best fit
        # breaks ties between equal free blocks by address); None: far apart, in creation order.
        self.segment_address: Callable[[int], int | None] | None = None

    # ---- Public API
    def malloc(self, key: int, nbytes: int) -> None:
        size = round_size(nbytes, self.conf)
        pool = self.pools[size <= K_SMALL_SIZE]
        block = self._get_free_block(pool, size)
        if block is None:
            block = self._alloc_block(pool, size)
            if block is None and self.capacity is not None:
                released = self.conf.max_split_size != DEFAULT.max_split_size and self._release_available(pool, size)
                block = self._alloc_block(pool, size) if released else None
                if block is None:
                    self.retries += 1
                    self.empty_cache()
                    block = self._alloc_block(pool, size)
            if block is None:
                raise OutOfMemory(size)
        if self._should_split(block, size):
            rest = _Block(block.addr + size, block.size - size, block.small, block.segment)
            rest.prev, rest.next = block, block.next
            if block.next is not None:
                block.next.prev = rest
            block.next = rest
            block.size = size
            pool.insert(rest)
        block.allocated = True
        block.requested = nbytes
        self.live[key] = block
        self.allocated_bytes += block.size
        if self.allocated_bytes > self.peak_allocated_bytes:
            self.peak_allocated_bytes = self.allocated_bytes

    def free(self, key: int) -> None:
        block = self.live.pop(key)
        block.allocated = False
        self.allocated_bytes -= block.size
        pool = self.pools[block.small]
        for neighbour in (block.prev, block.next):
            self._try_merge(block, neighbour, pool)
        pool.insert(block)

    def empty_cache(self) -> None:
        """release_cached_blocks: return every segment with nothing allocated; unmap the free
        pages of expandable segments."""
        for pool in self.pools.values():
            for block in list(pool.blocks.values()):
                if block.segment == self.expandable.get(pool.small):
                    self._unmap(pool, block)
                elif not block.is_split():
                    self._release(pool, block)

    def reset_peak(self) -> None:
        self.peak_allocated_bytes = self.allocated_bytes
        self.peak_reserved_bytes = self.reserved_bytes

    def layout(self) -> tuple["SegmentInfo", ...]:
        """Every segment now: its pool, size, and its blocks in address order (size, allocated)."""
        heads = {b.addr: b for b in [*self.live.values(), *(b for p in self.pools.values() for b in p.blocks.values())]
                 if b.prev is None or not b.prev.mapped}
        out = []
        for addr in sorted(heads):
            block, blocks = heads[addr], []
            while block is not None and block.mapped:
                blocks.append((block.size, block.allocated))
                block = block.next
            small = heads[addr].small
            out.append(SegmentInfo("small" if small else "large", sum(s for s, _ in blocks),
                                   sum(s for s, a in blocks if a), heads[addr].segment in self.expandable.values(),
                                   tuple(blocks)))
        return tuple(out)

    # ---- Private API
    def _should_split(self, block: _Block, size: int) -> bool:
        remaining = block.size - size
        if block.small or self.conf.expandable_segments:
            return remaining >= K_MIN_BLOCK
        return size < self.conf.max_split_size and remaining > K_SMALL_SIZE

    def _get_free_block(self, pool: _Pool, size: int) -> _Block | None:
        keys = pool.keys
        i = bisect.bisect_left(keys, (size, -1))
        if i == len(keys):
            return None
        block = pool.blocks[keys[i][1]]
        if self.conf.expandable_segments:
            # Best fit counts what a block can grow into: the tail of an expandable segment is
            # passed over for a block that fits without growing (get_free_block).
            while i + 1 < len(keys):
                following = pool.blocks[keys[i + 1][1]]
                if _expandable_size(following) < _expandable_size(block):
                    i, block = i + 1, following
                else:
                    break
        limit = self.conf.max_split_size
        if size < limit and block.size >= limit:
            return None  # an oversize block never serves a request below max_split_size
        if size >= limit and block.size >= size + self.conf.max_non_split_rounding:
            return None
        pool.remove(block)
        return block

    def _fits(self, extra: int) -> bool:
        return self.capacity is None or self.reserved_bytes + extra <= self.capacity

    def _grow(self, nbytes: int) -> None:
        self.reserved_bytes += nbytes
        if self.reserved_bytes > self.peak_reserved_bytes:
            self.peak_reserved_bytes = self.reserved_bytes

    def _alloc_block(self, pool: _Pool, size: int) -> _Block | None:
        if self.conf.expandable_segments:
            return self._alloc_expandable(pool, size)
        nbytes = allocation_size(size)
        if not self._fits(nbytes):
            return None
        segment = self._new_segment()
        self.segments[segment] = nbytes
        self.cuda_mallocs += 1
        self._grow(nbytes)
        address = self.segment_address(nbytes) if self.segment_address is not None else None
        return _Block(_segment_base(segment) if address is None else address, nbytes, pool.small, segment)

    def _new_segment(self) -> int:
        self._next_segment += 1
        return self._next_segment

    def _release(self, pool: _Pool, block: _Block) -> None:
        pool.remove(block)
        del self.segments[block.segment]
        self.reserved_bytes -= block.size

    def _release_available(self, pool: _Pool, size: int) -> bool:
        """release_available_cached_blocks: free oversize cached segments, the smallest large
        enough one, else the largest ones until `size` is covered."""
        want = max(size, self.conf.max_split_size)
        oversize = [pool.blocks[a] for s, a in pool.keys if s >= self.conf.max_split_size]
        oversize = [b for b in oversize if not b.is_split()]
        fitting = [b for b in oversize if b.size >= want]
        if fitting:
            self._release(pool, fitting[0])
            return True
        released = 0
        for block in reversed(oversize):
            if released >= want:
                break
            released += block.size
            self._release(pool, block)
        return released >= want

    def _try_merge(self, dst: _Block, src: _Block | None, pool: _Pool) -> None:
        if src is None or src.allocated or not src.mapped:
            return
        pool.remove(src)
        _absorb(dst, src)

    # ---- Expandable segments
    def _page(self, pool: _Pool) -> int:
        return K_SMALL_BUFFER if pool.small else K_LARGE_BUFFER

    def _alloc_expandable(self, pool: _Pool, size: int) -> _Block | None:
        """try_allocate_expandable_block: grow the pool's segment at its lowest free address."""
        if pool.small not in self.expandable:
            segment = self._new_segment()
            self.expandable[pool.small] = segment
            self.segments[segment] = 0
            whole = _Block(_segment_base(segment), _ADDRESS_GAP, pool.small, segment, mapped=False)
            pool.unmapped[whole.addr] = whole
        candidate = None
        for addr in sorted(pool.unmapped):
            c = pool.unmapped[addr]
            if c.prev is not None and not c.prev.allocated:
                c = c.prev
            room, b = 0, c
            while b is not None and room < size and not b.allocated:
                room += b.size
                b = b.next
            if room >= size:
                candidate = c
                break
        if candidate is None:
            return None
        if not candidate.mapped:
            candidate = self._map(pool, candidate, min(candidate.size, size))
            if candidate is None:
                return None
        while candidate.size < size:
            candidate = self._map(pool, candidate.next, min(size - candidate.size, candidate.next.size))
            if candidate is None:
                return None
        pool.remove(candidate)
        return candidate

    def _map(self, pool: _Pool, block: _Block, size: int) -> _Block | None:
        """map_block: back `size` bytes (whole pages) at the start of an unmapped range."""
        page = self._page(pool)
        nbytes = min(-(-size // page) * page, block.size)
        if not self._fits(nbytes):
            return None
        del pool.unmapped[block.addr]
        block.mapped = True
        if nbytes < block.size:
            rest = _Block(block.addr + nbytes, block.size - nbytes, block.small, block.segment, mapped=False)
            rest.prev, rest.next = block, block.next
            if block.next is not None:
                block.next.prev = rest
            block.next = rest
            block.size = nbytes
            pool.unmapped[rest.addr] = rest
        for neighbour in (block.prev, block.next):
            self._try_merge(block, neighbour, pool)
        pool.insert(block)
        self.segments[block.segment] += nbytes
        self.cuda_mallocs += 1
        self._grow(nbytes)
        return block

    def _unmap(self, pool: _Pool, block: _Block) -> None:
        """unmap_block: return the whole free pages inside a free block."""
        page = self._page(pool)
        base = _segment_base(block.segment)
        begin = base + -(-(block.addr - base) // page) * page
        end = base + ((block.addr + block.size - base) // page) * page
        if begin >= end:
            return
        pool.remove(block)
        if begin > block.addr:
            before = _Block(block.addr, begin - block.addr, block.small, block.segment)
            before.prev, before.next = block.prev, block
            if block.prev is not None:
                block.prev.next = before
            block.prev = before
            pool.insert(before)
        tail = block.addr + block.size - end
        if tail > 0:
            after = _Block(end, tail, block.small, block.segment)
            after.prev, after.next = block, block.next
            if block.next is not None:
                block.next.prev = after
            block.next = after
            pool.insert(after)
        block.addr, block.size, block.mapped = begin, end - begin, False
        self._merge_unmapped(pool, block)
        self.segments[block.segment] -= end - begin
        self.reserved_bytes -= end - begin
        if self.segments[block.segment] == 0:  # release_expandable_segment: nothing mapped is left
            del pool.unmapped[block.addr]
            del self.segments[block.segment]
            del self.expandable[pool.small]

    def _merge_unmapped(self, pool: _Pool, block: _Block) -> None:
        for src in (block.prev, block.next):
            if src is None or src.mapped or src.allocated:
                continue
            del pool.unmapped[src.addr]
            _absorb(block, src)
        pool.unmapped[block.addr] = block


def _absorb(dst: _Block, src: _Block) -> None:
    """`dst` takes in its free neighbour `src` (before or after it): one block, both sizes."""
    if dst.prev is src:
        dst.addr, dst.prev = src.addr, src.prev
        if dst.prev is not None:
            dst.prev.next = dst
    else:
        dst.next = src.next
        if dst.next is not None:
            dst.next.prev = dst
    dst.size += src.size


@dataclass(frozen=True)
class SegmentInfo:
    """One segment (cudaMalloc'ed, or the mapped part of an expandable one) and its blocks."""

    pool: str  # 'small' or 'large'
    total_bytes: int
    allocated_bytes: int
    expandable: bool
    blocks: tuple[tuple[int, bool], ...]  # (bytes, allocated) in address order


def _segment_base(segment: int) -> int:
    return _ADDRESS_BASE + segment * _ADDRESS_GAP


def _expandable_size(block: _Block) -> int:
    following = block.next
    return block.size + (following.size if following is not None and not following.mapped else 0)


def _roundup_power2_next_division(size: int, divisions: int) -> int:
    if size & (size - 1) == 0:
        return size
    floor = 1 << (size.bit_length() - 1)
    step = floor >> (divisions.bit_length() - 1)
    if step == 0:
        return floor << 1
    rounded = size & ~(step - 1)
    return size if rounded == size else rounded + step


@dataclass(frozen=True, eq=False)
class AllocatorSimulation:
    """What the simulated allocator did over the step: curves per timeline point, its peaks,
    the segments at the reserved peak. Plain data (the analysis cache stores it)."""

    conf: str  # the PYTORCH_CUDA_ALLOC_CONF simulated ('' = torch's defaults)
    capacity_bytes: int | None  # the capacity the allocator had to stay within (None: unlimited)
    warmup: bool  # the step ran once before (its cached segments are reused), as a measured step does
    reserved: np.ndarray  # int64, bytes in segments after each timeline point (memory_reserved)
    allocated: np.ndarray  # int64, bytes in allocated blocks (memory_allocated: block sizes)
    peak_reserved_bytes: int  # max_memory_reserved over the step
    peak_allocated_bytes: int  # max_memory_allocated over the step (block sizes, unsplit remainders included)
    peak_requested_bytes: int  # the most bytes requested at once: the traced peak
    peak_point: int  # the first timeline point where allocated peaks (the step's peak)
    segments_at_peak: tuple[SegmentInfo, ...]
    cuda_mallocs: int  # segments created (or pages mapped) during the step
    cache_flushes: int  # times the capacity forced release_cached_blocks
    oom_point: int | None  # first timeline point whose allocation does not fit the capacity
    initial_bytes: tuple[int, ...]  # storages live before the step, in allocation order (for re-simulation)
    initial_made_at: tuple[int, ...] = ()  # where the warm-up step makes each (-1: before it)

    @property
    def fragmentation_at_peak(self) -> float:
        """Share of the reserved bytes not in allocated blocks at the step's peak (cached free
        blocks, split slack): 1 - allocated / reserved there."""
        reserved = int(self.reserved[self.peak_point])
        return 0.0 if reserved == 0 else 1.0 - int(self.allocated[self.peak_point]) / reserved


def simulate(initial_bytes, nbytes: np.ndarray, storage: np.ndarray, conf: AllocConf = DEFAULT,
             capacity_bytes: int | None = None, warmup: bool = True, made_at=None) -> AllocatorSimulation:
    """Replay a step's events (signed `nbytes` per `storage`, in order) through the allocator.

    The storages live before the step (`initial_bytes`) are allocated first. With `warmup` the
    step runs once before the measured one, like a real measurement (engine/measure.py): what it
    leaves alive (gradients, the loss) is freed after it, its cached segments stay, and the peaks
    are reset. `made_at` (one event index per starting storage, -1: before the step) says where
    the warm-up step makes the storages a first step creates (optimizer state, library
    workspaces): they take cached blocks there, as on the GPU, not fresh segments up front.
    Past the capacity, the first allocation that does not fit (in the warm-up step or
    the measured one: both are the step) is `oom_point` and the rest is simulated without the
    limit (so the curve still says how much would be needed).
    The segment layout is taken at the allocated peak, in a second, identical replay (cheaper
    than a snapshot at every new maximum).
    """
    sizes, keys = nbytes.tolist(), storage.tolist()
    initial = [int(b) for b in initial_bytes]
    made = tuple(int(m) for m in made_at) if made_at is not None else (-1,) * len(initial)
    first = _replay(initial, sizes, keys, conf, capacity_bytes, warmup, None, made)
    peak_point = int(np.argmax(first["allocated"]))
    layout = _replay(initial, sizes, keys, conf, capacity_bytes, warmup, peak_point, made)["layout"]
    requested = np.empty(len(sizes) + 1, dtype=np.int64)
    requested[0] = sum(initial)
    np.cumsum(nbytes, out=requested[1:])
    requested[1:] += requested[0]
    reserved, allocated = first["reserved"], first["allocated"]
    return AllocatorSimulation(
        conf=conf.text, capacity_bytes=capacity_bytes, warmup=warmup, reserved=reserved, allocated=allocated,
        peak_reserved_bytes=int(reserved.max()), peak_allocated_bytes=int(allocated.max()),
        peak_requested_bytes=int(requested.max()), peak_point=peak_point, segments_at_peak=layout,
        cuda_mallocs=first["mallocs"], cache_flushes=first["flushes"], oom_point=first["oom"],
        initial_bytes=tuple(initial), initial_made_at=made,
    )


def _replay(initial: list[int], sizes: list[int], keys: list[int], conf: AllocConf, capacity: int | None,
            warmup: bool, snapshot_at: int | None, made: tuple[int, ...]) -> dict:
    allocator = CachingAllocator(conf, capacity)
    oom: list[int] = []

    def malloc(key, size, point):
        try:
            allocator.malloc(key, size)
        except OutOfMemory:
            if not oom:
                oom.append(point)
            allocator.capacity = None
            allocator.malloc(key, size)

    later: dict[int, list[int]] = {}  # event index -> starting storages the warm-up step makes there
    for i, size in enumerate(initial):
        if warmup and made[i] >= 0:
            later.setdefault(made[i], []).append(i)
        else:
            malloc(-1 - i, size, 0)
    if warmup:
        def make(point):
            for i in later.get(point, ()):
                malloc(-1 - i, initial[i], 0)

        for key in _run(allocator, sizes, keys, malloc, None, None, make if later else None):
            allocator.free(key)
        for i, size in enumerate(initial):  # start storages the step freed come back for the next one
            if -1 - i not in allocator.live:
                malloc(-1 - i, size, 0)
    allocator.reset_peak()
    mallocs_before = allocator.cuda_mallocs
    curves = (np.empty(len(sizes) + 1, dtype=np.int64), np.empty(len(sizes) + 1, dtype=np.int64))
    curves[0][0], curves[1][0] = allocator.reserved_bytes, allocator.allocated_bytes
    out = {"layout": allocator.layout() if snapshot_at == 0 else ()}
    _run(allocator, sizes, keys, malloc, curves, (snapshot_at, out))
    out.update(reserved=curves[0], allocated=curves[1], mallocs=allocator.cuda_mallocs - mallocs_before,
               flushes=allocator.retries, oom=oom[0] if oom else None)
    return out


def _run(allocator: CachingAllocator, sizes: list[int], keys: list[int], malloc, curves, snapshot,
         before=None) -> list[int]:
    """One pass over the events; returns the storages it allocated that are still live, in order.
    `before(i)` runs ahead of event i (the warm-up step making its starting storages)."""
    born: dict[int, None] = {}
    live = allocator.live
    for i, (size, key) in enumerate(zip(sizes, keys)):
        if before is not None:
            before(i)
        if size > 0:
            malloc(key, size, i + 1)
            born[key] = None
        elif key in live:
            allocator.free(key)
            born.pop(key, None)
        if curves is not None:
            curves[0][i + 1] = allocator.reserved_bytes
            curves[1][i + 1] = allocator.allocated_bytes
            if snapshot[0] == i + 1:
                snapshot[1]["layout"] = allocator.layout()
    return list(born)


@dataclass(frozen=True)
class LibraryWorkspace:
    """A workspace a CUDA library takes from the caching allocator and keeps (traced)."""

    label: str  # e.g. 'cuBLAS workspace (autograd thread)'
    bytes: int
    made: str  # where: 'an earlier step' (live from the start) or the layer of the first matrix product


@dataclass(frozen=True)
class ConvWorkspaces:
    """What the trace's convolutions took (CudaMemory.convolutions, from engine/cudnn_workspaces.py):
    how many of each source, and the largest workspace with its layer. Torch-free, as the whole
    Analysis is: the CLI unpickles it in a process that never imports torch."""

    table: str  # 'NVIDIA H200, compute capability 9.0, torch 2.11, cuDNN 91900'
    recorded: int
    scaled: int
    estimated: int
    largest_bytes: int
    largest_at: str  # the layer and direction, e.g. "conv1 (forward)"
    threads: int = 1  # threads that ran convolutions (each holds a cuDNN handle): forward's, autograd's

    @property
    def count(self) -> int:
        return self.recorded + self.scaled + self.estimated

    def describe(self) -> str:
        from .units import format_bytes

        parts = [f"{n} {label}" for n, label in ((self.recorded, "recorded"), (self.scaled, "scaled from another batch"),
                                                  (self.estimated, "estimated")) if n]
        return (f"cuDNN convolution workspaces ({self.table}): {', '.join(parts)}; largest "
                f"{format_bytes(self.largest_bytes)} at {self.largest_at}")


@dataclass(frozen=True, eq=False)
class CudaMemory:
    """The CUDA side of an analysis traced for `--device cuda`: the traced library workspaces and
    the simulated allocator over the step (Analysis.cuda)."""

    arch: tuple[int, int]  # compute capability the sizes are for
    workspaces: tuple[LibraryWorkspace, ...]
    simulation: AllocatorSimulation
    warnings: tuple[str, ...] = ()
    convolutions: ConvWorkspaces | None = None  # cuDNN's workspaces, traced per convolution


    @property
    def workspace_bytes(self) -> int:
        return sum(w.bytes for w in self.workspaces)


def simulate_trace(initial_bytes, nbytes: np.ndarray, storage: np.ndarray, conf_text: str, first_step: bool,
                   capacity_bytes: int | None = None, made_at=None) -> AllocatorSimulation:
    """The step as a measurement sees it: after a warm-up step unless it is the first step."""
    from .alloc_conf import parse_alloc_conf

    return simulate(initial_bytes, nbytes, storage, parse_alloc_conf(conf_text), capacity_bytes,
                    warmup=not first_step, made_at=made_at)


def cuda_memory(request, initial_storages: dict[int, int], nbytes: np.ndarray, storage: np.ndarray,
                workspaces, convolutions=None, made_at: dict[int, int] | None = None) -> CudaMemory:
    """Analysis.cuda for a step traced for CUDA: `workspaces` are the library workspaces the
    trace made (engine/target.py CublasWorkspaces.made); `made_at` where the warm-up step makes
    the starting storages that are not there before it (RawTrace.initial_made_at)."""
    from .alloc_conf import parse_alloc_conf
    from .cuda_workspaces import DEFAULT_ARCH

    made_at = made_at or {}
    simulation = simulate_trace(list(initial_storages.values()), nbytes, storage, request.alloc_conf,
                                request.first_step, made_at=tuple(made_at.get(s, -1) for s in initial_storages))
    return CudaMemory(request.cuda_arch or DEFAULT_ARCH, tuple(workspaces), simulation,
                      parse_alloc_conf(request.alloc_conf).warnings, convolutions)
