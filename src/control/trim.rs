//! Give back the memory start-up and reloads touched once: the executable's pages that reading
//! and compiling a configuration ran, and the heap they freed.
//!
//! The kernel maps an executable's pages as they are first used, in runs of up to 64 KiB around
//! each fault (fault-around). Parsing, the directive table, PCRE and TLS set-up, the supervisor's
//! checks: after start-up ~3.5 MB of nginx-rs's code and read-only data were mapped in each of its
//! processes and counted in their RSS and PSS, though the request path uses a fraction of it. Those
//! pages are the file's bytes, unchanged, so [`release`] drops them from this process's page tables
//! (`MADV_DONTNEED`); what still runs faults its page back from the page cache (a minor fault, no
//! disk read while the file is cached).
//!
//! Only pages that cannot hold anything but the file's bytes qualify: whole pages of the
//! executable's loadable segments that are not writable, outside its RELRO range (the loader
//! writes relocations there before making it read-only), and none at all if the executable has
//! text relocations. The segments come from the loader (`dl_iterate_phdr`), not from `/proc`:
//! after dropping privileges the serving process may not read its own `/proc/self/smaps`.
//!
//! Then `malloc_trim(0)` returns the free heap pages the configuration's parse and compile left.

use std::ops::Range;

/// Drop the pages described above; returns how many bytes of address space were released.
pub fn release() -> usize {
    let mut released = 0;
    for range in clean_pages() {
        // SAFETY: the range is whole pages of a non-writable segment of this executable, outside
        // RELRO, in an executable without text relocations: nothing ever wrote to them, so they
        // hold the file's bytes and nothing else. Dropping the page-table entries loses nothing;
        // the next access maps the same bytes again. No memory Rust owns lives there.
        let r = unsafe {
            libc::madvise(
                range.start as *mut libc::c_void,
                range.end - range.start,
                libc::MADV_DONTNEED,
            )
        };
        if r == 0 {
            released += range.end - range.start;
        }
    }
    // SAFETY: malloc_trim only gives free memory of glibc's arenas back to the kernel.
    unsafe { libc::malloc_trim(0) };
    released
}

/// A program header, as much of it as [`unchanged_pages`] needs.
#[derive(Clone, Copy, Debug)]
struct Segment {
    kind: u32,
    writable: bool,
    vaddr: usize,
    /// The bytes that come from the file; past them (up to the segment's memory size) the
    /// loader zero-fills, and the page where the file's part ends was written to.
    filesz: usize,
    memsz: usize,
}

/// The executable's pages that hold only the file's bytes (see the module doc).
fn clean_pages() -> Vec<Range<usize>> {
    struct Found {
        base: usize,
        segments: Vec<Segment>,
        text_relocations: bool,
    }
    unsafe extern "C" fn first_object(
        info: *mut libc::dl_phdr_info,
        _size: usize,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: the loader passes a valid `info` for the call's duration, whose `dlpi_phdr`
        // points at `dlpi_phnum` program headers; `data` is the `Found` passed below.
        let (info, found) = unsafe { (&*info, &mut *(data as *mut Found)) };
        let phdrs = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum.into()) };
        found.base = info.dlpi_addr as usize;
        for p in phdrs {
            found.segments.push(Segment {
                kind: p.p_type,
                writable: p.p_flags & libc::PF_W != 0,
                vaddr: p.p_vaddr as usize,
                filesz: p.p_filesz as usize,
                memsz: p.p_memsz as usize,
            });
            if p.p_type == libc::PT_DYNAMIC {
                // SAFETY: PT_DYNAMIC locates the loaded `_DYNAMIC` array, (tag, value) pairs of
                // machine words ending with DT_NULL.
                found.text_relocations |= unsafe {
                    has_text_relocations((found.base + p.p_vaddr as usize) as *const usize)
                };
            }
        }
        // The first object is the executable itself: stop there.
        1
    }
    let mut found = Found {
        base: 0,
        segments: Vec::new(),
        text_relocations: false,
    };
    // SAFETY: the callback only reads what the loader hands it and writes to `found`.
    unsafe { libc::dl_iterate_phdr(Some(first_object), &mut found as *mut Found as *mut _) };
    if found.text_relocations {
        return Vec::new();
    }
    // SAFETY: sysconf has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(0);
    unchanged_pages(found.base, &found.segments, page)
}

/// Whether the `_DYNAMIC` array at `dynamic` asks for text relocations (DT_TEXTREL or DF_TEXTREL).
///
/// # Safety
/// `dynamic` must point at a loaded dynamic array terminated by DT_NULL.
unsafe fn has_text_relocations(mut dynamic: *const usize) -> bool {
    const DT_NULL: usize = 0;
    const DT_TEXTREL: usize = 22;
    const DT_FLAGS: usize = 30;
    const DF_TEXTREL: usize = 0x4;
    loop {
        // SAFETY: per the contract, every entry up to DT_NULL is readable.
        let (tag, value) = unsafe { (*dynamic, *dynamic.add(1)) };
        match tag {
            DT_NULL => return false,
            DT_TEXTREL => return true,
            DT_FLAGS if value & DF_TEXTREL != 0 => return true,
            _ => {}
        }
        dynamic = unsafe { dynamic.add(2) };
    }
}

/// The whole pages of `segments` (loaded at `base`) that are loadable, not writable, outside
/// RELRO and read from the file. A segment's first and last page may be shared with a neighbour
/// mapped over it, or zero-filled past the file's bytes, so only pages wholly inside the segment's
/// file part count.
fn unchanged_pages(base: usize, segments: &[Segment], page: usize) -> Vec<Range<usize>> {
    if !page.is_power_of_two() {
        return Vec::new();
    }
    let span = |s: &Segment, len: usize| {
        let start = base.checked_add(s.vaddr)?;
        Some(start..start.checked_add(len)?)
    };
    let relro: Vec<Range<usize>> = segments
        .iter()
        .filter(|s| s.kind == libc::PT_GNU_RELRO)
        .filter_map(|s| span(s, s.memsz))
        .collect();
    segments
        .iter()
        .filter(|s| s.kind == libc::PT_LOAD && !s.writable)
        .filter_map(|s| span(s, s.filesz.min(s.memsz)))
        .filter(|r| !relro.iter().any(|x| x.start < r.end && r.start < x.end))
        .filter_map(|r| {
            let start = r.start.checked_add(page - 1)? & !(page - 1);
            let end = r.end & !(page - 1);
            (start < end).then_some(start..end)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    // Unit tests only: unwrap on this process's own /proc files.
    use super::*;

    fn load(vaddr: usize, memsz: usize, writable: bool) -> Segment {
        Segment {
            kind: libc::PT_LOAD,
            writable,
            vaddr,
            filesz: memsz,
            memsz,
        }
    }

    #[test]
    fn only_whole_read_only_pages_outside_relro() {
        let segments = [
            load(0, 0x1b8f00, false),        // headers, rodata: ends mid-page
            load(0x1b9000, 0x4e2100, false), // text
            load(0x69b100, 0x2d000, true),   // RELRO and data
            Segment {
                kind: libc::PT_GNU_RELRO,
                writable: false,
                vaddr: 0x69b100,
                filesz: 0x2cf00,
                memsz: 0x2cf00,
            },
            load(0x700000, 0x3000, false), // read-only but inside RELRO below
            Segment {
                kind: libc::PT_GNU_RELRO,
                writable: false,
                vaddr: 0x701000,
                filesz: 0x1000,
                memsz: 0x1000,
            },
        ];
        let base = 0x5555_0000_0000;
        assert_eq!(
            unchanged_pages(base, &segments, 0x1000),
            vec![base..base + 0x1b8000, base + 0x1b9000..base + 0x69b000]
        );
    }

    #[test]
    fn zero_filled_pages_past_the_files_bytes_are_kept() {
        let mut segment = load(0x10000, 0x5000, false);
        segment.filesz = 0x2800; // the loader zeroed 0x12800..0x13000 and mapped zeros past it
        assert_eq!(
            unchanged_pages(0, &[segment], 0x1000),
            vec![0x10000..0x12000]
        );
    }

    #[test]
    fn no_pages_for_a_nonsense_page_size() {
        assert!(unchanged_pages(0, &[load(0, 0x10000, false)], 0).is_empty());
        assert!(unchanged_pages(0, &[load(0, 0x10000, false)], 3000).is_empty());
    }

    /// Resident kB of this executable's executable mappings, from /proc/self/smaps.
    fn resident_code_kb() -> usize {
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let exe = exe.to_string_lossy();
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut in_code = false;
        let mut kb = 0;
        for line in smaps.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields
                .first()
                .is_some_and(|f| f.contains('-') && !f.ends_with(':'))
            {
                in_code = fields.get(1).is_some_and(|p| p.contains('x'))
                    && fields.get(5).is_some_and(|p| exe.starts_with(p));
            } else if in_code && fields.first() == Some(&"Rss:") {
                kb += fields[1].parse::<usize>().unwrap();
            }
        }
        kb
    }

    #[test]
    fn released_code_leaves_the_page_tables_and_still_runs() {
        let before = resident_code_kb();
        assert!(
            !clean_pages().is_empty(),
            "the test binary has read-only segments"
        );
        let released = release();
        let after = resident_code_kb();
        assert!(released > 0);
        // Other tests run meanwhile and fault some code back; far less than was resident.
        assert!(after < before, "resident code {before} kB -> {after} kB");
    }
}
