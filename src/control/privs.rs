//! Dropping root: `user USER [GROUP]` (default `nobody`) resolved to ids by the supervisor, and the
//! drop itself in the serving process, in nginx's order: `initgroups`, `setgid`, `setuid`; then
//! `PR_SET_NO_NEW_PRIVS`, so nothing executed later can regain privileges.

use std::ffi::CString;
use std::io;

/// Who the serving process runs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Creds {
    pub user: String,
    pub uid: u32,
    pub gid: u32,
}

/// nginx's default user when none is configured.
pub const DEFAULT_USER: &str = "nobody";

fn uid_of(name: &str) -> Option<(u32, u32)> {
    let c = CString::new(name).ok()?;
    // SAFETY: `c` is NUL-terminated; the returned record is read at once, before any other
    // getpw* call in this (single-threaded at this point) process could overwrite it.
    let pw = unsafe { libc::getpwnam(c.as_ptr()) };
    if pw.is_null() {
        return None;
    }
    // SAFETY: non-null pointer to a passwd record, see above.
    Some(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

fn gid_of(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: as in `uid_of`, with getgrnam.
    let gr = unsafe { libc::getgrnam(c.as_ptr()) };
    if gr.is_null() {
        return None;
    }
    // SAFETY: non-null pointer to a group record.
    Some(unsafe { (*gr).gr_gid })
}

/// Resolves the `user` directive. The group defaults to the user's name, as in nginx; for the
/// built-in default (`nobody`) a missing `nobody` group falls back to the user's primary group
/// (Debian calls it `nogroup`), as nginx's configure picks `nogroup` there.
/// Errors are nginx's: `getpwnam("x") failed`, `getgrnam("x") failed`.
pub fn resolve(user: Option<&(String, Option<String>)>) -> Result<Creds, String> {
    let (name, group) = match user {
        Some((u, g)) => (u.as_str(), g.as_deref()),
        None => (DEFAULT_USER, None),
    };
    let (uid, primary) = uid_of(name).ok_or_else(|| format!("getpwnam(\"{name}\") failed"))?;
    let group_name = group.unwrap_or(name);
    let gid = match gid_of(group_name) {
        Some(g) => g,
        None if user.is_none() => primary,
        None => return Err(format!("getgrnam(\"{group_name}\") failed")),
    };
    Ok(Creds {
        user: name.to_string(),
        uid,
        gid,
    })
}

fn check(r: libc::c_int, what: String) -> io::Result<()> {
    if r == 0 {
        Ok(())
    } else {
        let e = io::Error::last_os_error();
        Err(io::Error::new(
            e.kind(),
            format!("{what} failed {}", super::errno_text(&e)),
        ))
    }
}

/// Drops this process to `creds` for good. The error text is nginx's, e.g.
/// `setuid(65534) failed (1: Operation not permitted)`.
pub fn drop_to(creds: &Creds) -> io::Result<()> {
    let name = CString::new(creds.user.as_str())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "user name with NUL"))?;
    // SAFETY: plain system calls on valid arguments (`name` is NUL-terminated).
    unsafe {
        check(
            libc::initgroups(name.as_ptr(), creds.gid),
            format!("initgroups({}, {})", creds.user, creds.gid),
        )?;
        check(libc::setgid(creds.gid), format!("setgid({})", creds.gid))?;
        check(libc::setuid(creds.uid), format!("setuid({})", creds.uid))?;
        check(
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0),
            "prctl(PR_SET_NO_NEW_PRIVS)".to_string(),
        )?;
    }
    // Belt and braces: with the real, effective and saved ids all changed, root is gone for good.
    if creds.uid != 0 {
        // SAFETY: as above.
        if unsafe { libc::setuid(0) } == 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "setuid(0) succeeded after dropping privileges",
            ));
        }
    }
    Ok(())
}

/// True when this process has root's effective uid.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_user_is_nobody_and_unknown_names_fail_like_nginx() {
        if let Ok(c) = resolve(None) {
            assert_eq!(c.user, "nobody");
        }
        let bad = ("no-such-user-xyz".to_string(), None);
        assert_eq!(
            resolve(Some(&bad)).expect_err("unknown user"),
            "getpwnam(\"no-such-user-xyz\") failed"
        );
        let bad_group = ("root".to_string(), Some("no-such-group-xyz".to_string()));
        assert_eq!(
            resolve(Some(&bad_group)).expect_err("unknown group"),
            "getgrnam(\"no-such-group-xyz\") failed"
        );
    }
}
