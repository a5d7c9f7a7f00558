//! Large buffers backed by 2 MB pages where the kernel offers them on request.
//!
//! An IJB-C evaluation fills several arrays of 47 to 125 MB. In 4 KB pages that is about
//! 100,000 page faults (each a kernel entry that zeroes a page), and the randomly read
//! template features span some 12,000 pages, more than the CPU's TLB maps. Linux backs an
//! anonymous mapping with 2 MB pages when asked (`madvise(MADV_HUGEPAGE)`, needed where
//! transparent huge pages are set to `madvise`, as on many distributions), 512× fewer of both.
//! Asking is only advice: the buffer works the same when it is refused or on other systems.

/// A vector of `n` zeros whose memory is advised to be backed by huge pages. For buffers this
/// large the allocator usually maps fresh memory, whose zeros are the kernel's: the pages are
/// then only faulted in, and zeroed, where and when the caller first writes them (in parallel
/// when it writes in parallel).
pub(crate) fn zeroed<T: Clone + Default>(n: usize) -> Vec<T> {
    // `vec![zero; n]` of a primitive type allocates zeroed memory without writing it.
    let mut v = vec![T::default(); n];
    advise_huge(v.as_mut_ptr() as *mut u8, n * size_of::<T>());
    v
}

/// An empty vector with room for `n` elements, its memory advised as [`zeroed`]'s.
pub(crate) fn with_capacity<T>(n: usize) -> Vec<T> {
    let mut v = Vec::with_capacity(n);
    advise_huge(v.as_mut_ptr() as *mut u8, n * size_of::<T>());
    v
}

/// Huge-page size on the systems where [`advise_huge`] asks for it.
const HUGE: usize = 2 << 20;

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn advise_huge(start: *mut u8, len: usize) {
    if len < 2 * HUGE {
        return;
    }
    // The whole 2 MB pages inside the buffer.
    let first = (start as usize).next_multiple_of(HUGE);
    let end = (start as usize + len) / HUGE * HUGE;
    if end > first {
        // SAFETY: the range lies inside an allocation this process owns; MADV_HUGEPAGE
        // changes how its pages are backed, never their contents. A failure (for example
        // on a kernel without transparent huge pages) leaves the buffer as it was.
        unsafe {
            libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge(_start: *mut u8, _len: usize) {}
