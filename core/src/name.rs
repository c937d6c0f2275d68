//! Channel names and where a channel lives.

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Prefix of every shared-memory channel's file in the shared-memory directory, so that
/// `mmf list` never mistakes another program's segment for a channel.
pub const SHM_PREFIX: &str = "mmf.";

/// Longest accepted name: `NAME_MAX` (255) less the prefix.
pub const MAX_NAME_LEN: usize = 255 - SHM_PREFIX.len();

/// Where a channel's bytes live.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Location {
    /// OS shared memory under a plain name (on Linux `/dev/shm/mmf.NAME`): fast, not persisted,
    /// gone after `remove` or a reboot. The name is valid by construction ([`ShmName`]).
    Shm(ShmName),
    /// A regular file at a path: persisted across restarts.
    File(PathBuf),
    /// Private memory of this process (tests, benchmarks, single-process use).
    Anonymous,
}

impl Location {
    /// Reads a user's channel argument: anything containing a `/` is a file path, anything else
    /// a shared-memory name (validated with [`validate_name`]).
    ///
    /// ```
    /// use mmf::Location;
    /// use mmf::channel::Error;
    /// assert_eq!(Location::parse("Test")?, Location::Shm("Test".parse()?));
    /// assert_eq!(Location::parse("./data/t.mmf")?, Location::File("./data/t.mmf".into()));
    /// assert!(Location::parse("").is_err());
    /// assert!(matches!(Location::parse("data/"), Err(Error::IsADirectory { .. })));
    /// # Ok::<(), mmf::channel::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] for a name that [`validate_name`] refuses, or a path that
    /// contains NUL; [`Error::IsADirectory`] for a path that ends in `/`, which names a
    /// directory, never a channel.
    pub fn parse(arg: &str) -> Result<Location> {
        if arg.contains('/') {
            file_path(std::ffi::OsStr::new(arg))
        } else {
            Ok(Location::Shm(ShmName::new(arg)?))
        }
    }

    /// [`parse`](Location::parse) of an argument that may not be UTF-8 (a command line's, as
    /// [`std::env::args_os`] gives it): a file path may be any bytes but NUL, as the OS takes
    /// it; a shared-memory name is UTF-8 text.
    ///
    /// ```
    /// # #[cfg(unix)] {
    /// use std::ffi::OsStr;
    /// use std::os::unix::ffi::OsStrExt;
    /// use mmf::Location;
    /// use mmf::channel::Error;
    /// let latin1 = OsStr::from_bytes(b"./caf\xe9.mmf");
    /// assert_eq!(Location::parse_os(latin1)?, Location::file(latin1));
    /// assert_eq!(Location::parse_os(OsStr::new("Test"))?, Location::parse("Test")?);
    /// let bad = Location::parse_os(OsStr::from_bytes(b"caf\xe9"));
    /// assert!(matches!(bad, Err(Error::InvalidName { .. })));
    /// # }
    /// # Ok::<(), mmf::channel::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`parse`](Location::parse); and [`Error::InvalidName`] for a name without `/` that is
    /// not UTF-8.
    pub fn parse_os(arg: &std::ffi::OsStr) -> Result<Location> {
        if let Some(arg) = arg.to_str() {
            return Location::parse(arg);
        }
        if !arg.as_encoded_bytes().contains(&b'/') {
            return Err(Error::InvalidName {
                name: arg.to_string_lossy().into_owned(),
                reason: "it is not UTF-8 text, which a shared-memory name is (a file path, with \
                         a '/', may hold any bytes)",
            });
        }
        file_path(arg)
    }

    /// A shared-memory location, with the name validated.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`], as [`ShmName::new`] gives it.
    pub fn shm(name: &str) -> Result<Location> {
        Ok(Location::Shm(ShmName::new(name)?))
    }

    /// A file location.
    pub fn file(path: impl AsRef<Path>) -> Location {
        Location::File(path.as_ref().to_owned())
    }

    /// The file behind the location (`None` for [`Location::Anonymous`]).
    pub fn path(&self) -> Option<PathBuf> {
        match self {
            Location::Shm(name) => Some(crate::os::shm_dir().join(format!("{SHM_PREFIX}{name}"))),
            Location::File(p) => Some(p.clone()),
            Location::Anonymous => None,
        }
    }

    /// Whether the channel survives a reboot.
    pub fn is_persistent(&self) -> bool {
        matches!(self, Location::File(_))
    }

    /// Whether a channel could appear here by being created: `false` for an anonymous channel,
    /// which no other process can create, for a shared-memory name while the shared-memory
    /// directory does not exist (mmf never makes it: see `MMF_SHM_DIR`; a name mistyped there
    /// would otherwise be waited for in silence), and for a file path that passes through a
    /// file (`state.mmf/x`). A file path into a directory that does not exist yet can: a
    /// service that makes its directory when it starts (`mkdir -p /run/app`) creates its
    /// channel there after a reader that started first began to wait.
    ///
    /// ```
    /// use mmf::Location;
    /// let dir = std::env::temp_dir().join(format!("can-appear-doc-{}", std::process::id()));
    /// assert!(Location::file(dir.join("not/made/yet/state.mmf")).can_appear());
    /// std::fs::write(&dir.with_extension("txt"), b"a file")?;
    /// assert!(!Location::file(dir.with_extension("txt").join("state.mmf")).can_appear());
    /// assert!(!Location::Anonymous.can_appear());
    /// # std::fs::remove_file(dir.with_extension("txt"))?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn can_appear(&self) -> bool {
        match self {
            Location::Shm(_) => crate::os::shm_dir().is_dir(),
            Location::File(path) => {
                // The nearest ancestor that exists must be a directory ("" is the current one).
                for dir in path.ancestors().skip(1) {
                    if dir.as_os_str().is_empty() {
                        return true;
                    }
                    match std::fs::metadata(dir) {
                        Ok(m) => return m.is_dir(),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        // A file on the way (`ENOTDIR`): nothing can be made under it.
                        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => return false,
                        // Not searchable by this process, say: another may create it.
                        Err(_) => return true,
                    }
                }
                true
            }
            Location::Anonymous => false,
        }
    }
}

/// A shared-memory channel's name, checked by [`validate_name`]: the only way to make one is
/// [`ShmName::new`] (or `str::parse`, `TryFrom`), so a [`Location::Shm`] always names a file
/// directly in the shared-memory directory (an empty name would make a file named `mmf.`, one
/// with a `/` look into a subdirectory).
///
/// ```
/// use mmf::{Location, ShmName};
/// let name = ShmName::new("results.7")?;
/// assert_eq!(name.as_str(), "results.7");
/// assert_eq!(Location::Shm(name), Location::parse("results.7")?);
/// assert!(ShmName::new("a/b").is_err());
/// # Ok::<(), mmf::channel::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShmName(String);

impl ShmName {
    /// Checks `name` with [`validate_name`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`], saying why.
    pub fn new(name: impl Into<String>) -> Result<ShmName> {
        let name = name.into();
        validate_name(&name)?;
        Ok(ShmName(name))
    }

    /// The name, as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name, as a `String`.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl AsRef<str> for ShmName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for ShmName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for ShmName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for ShmName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl fmt::Display for ShmName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for ShmName {
    type Err = Error;

    fn from_str(s: &str) -> Result<ShmName> {
        ShmName::new(s)
    }
}

impl TryFrom<String> for ShmName {
    type Error = Error;

    fn try_from(s: String) -> Result<ShmName> {
        ShmName::new(s)
    }
}

impl TryFrom<&str> for ShmName {
    type Error = Error;

    fn try_from(s: &str) -> Result<ShmName> {
        ShmName::new(s)
    }
}

impl From<ShmName> for String {
    fn from(name: ShmName) -> String {
        name.0
    }
}

/// [`Location::parse`], so that a `Location` comes from `str::parse` and from command-line
/// parsers that use `FromStr` (clap's `value_parser!`).
///
/// ```
/// use mmf::Location;
/// let at: Location = "./state.mmf".parse()?;
/// assert_eq!(at, Location::file("./state.mmf"));
/// # Ok::<(), mmf::channel::Error>(())
/// ```
impl std::str::FromStr for Location {
    type Err = Error;

    fn from_str(s: &str) -> Result<Location> {
        Location::parse(s)
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Shm(name) => f.write_str(name.as_str()),
            Location::File(p) => write!(f, "{}", p.display()),
            Location::Anonymous => f.write_str("(anonymous)"),
        }
    }
}

/// A channel argument with a `/` as a file path ([`Location::parse`], [`Location::parse_os`]):
/// any bytes but NUL, and not ending in `/`.
fn file_path(arg: &std::ffi::OsStr) -> Result<Location> {
    let bytes = arg.as_encoded_bytes();
    let name = || arg.to_string_lossy().into_owned();
    if bytes.contains(&0) {
        return Err(Error::InvalidName {
            name: name(),
            reason: "it contains NUL",
        });
    }
    // `y/` names a directory whether or not `y` exists: say so before any look, not "not
    // found" (with advice to create it) or a shared-memory name's message.
    if bytes.ends_with(b"/") {
        return Err(Error::IsADirectory { name: name() });
    }
    Ok(Location::File(PathBuf::from(arg)))
}

/// What names a channel, for the functions that open, create or remove one ([`Channel::open`],
/// [`Options::create`], [`Follower::open`] and the rest), as `ToSocketAddrs` is for a socket's
/// address:
///
/// - a [`Location`] (or a reference to one), taken as it is;
/// - a [`ShmName`], a shared-memory name already checked;
/// - a `str` or `String`, read as [`Location::parse`] reads it: a shared-memory name, or a file
///   path when it contains a `/` (an invalid name is [`Error::InvalidName`]);
/// - a [`Path`] or [`PathBuf`], always a file, with or without a `/` (`Path::new("state.mmf")`
///   is the file `state.mmf` in the working directory).
///
/// ```
/// use std::path::Path;
/// use mmf::{Channel, Location, Options};
/// # let dir = std::env::temp_dir().join(format!("mmf-to-location-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// let name = format!("to-location-doc-{}", std::process::id());
/// let a = Channel::create(&name, 64)?;                         // a name
/// let b = Options::new().open(Location::parse(&name)?)?;       // a Location
/// let c = Channel::create(dir.join("state.mmf"), 64)?;         // a path: a file
/// assert_eq!(a.location(), b.location());
/// assert_eq!(c.location(), &Location::file(dir.join("state.mmf")));
/// Channel::remove(&name)?;
/// Channel::remove(c.location())?;
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// [`Channel::open`]: crate::Channel::open
/// [`Options::create`]: crate::Options::create
/// [`Follower::open`]: crate::Follower::open
pub trait ToLocation {
    /// The location this names, borrowed when it is one already.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] and [`Error::IsADirectory`], as [`Location::parse`] gives them.
    fn to_location(&self) -> Result<Cow<'_, Location>>;
}

/// A shared-memory channel's location: [`Location::Shm`].
impl From<ShmName> for Location {
    fn from(name: ShmName) -> Location {
        Location::Shm(name)
    }
}

/// A file channel's location, whatever the path looks like: [`Location::File`].
impl From<PathBuf> for Location {
    fn from(path: PathBuf) -> Location {
        Location::File(path)
    }
}

/// A file channel's location: [`Location::file`].
impl From<&Path> for Location {
    fn from(path: &Path) -> Location {
        Location::file(path)
    }
}

impl ToLocation for Location {
    fn to_location(&self) -> Result<Cow<'_, Location>> {
        Ok(Cow::Borrowed(self))
    }
}

/// A validated shared-memory name: [`Location::Shm`] of it, with nothing left to check.
impl ToLocation for ShmName {
    fn to_location(&self) -> Result<Cow<'_, Location>> {
        Ok(Cow::Owned(Location::Shm(self.clone())))
    }
}

impl ToLocation for str {
    fn to_location(&self) -> Result<Cow<'_, Location>> {
        Location::parse(self).map(Cow::Owned)
    }
}

impl ToLocation for String {
    fn to_location(&self) -> Result<Cow<'_, Location>> {
        self.as_str().to_location()
    }
}

impl ToLocation for Path {
    fn to_location(&self) -> Result<Cow<'_, Location>> {
        Ok(Cow::Owned(Location::file(self)))
    }
}

impl ToLocation for PathBuf {
    fn to_location(&self) -> Result<Cow<'_, Location>> {
        self.as_path().to_location()
    }
}

/// A command-line argument (`std::env::args_os`), read as [`Location::parse_os`] reads it: a
/// name, or a file path, which need not be UTF-8.
///
/// ```
/// # use mmf::channel::{Location, ToLocation};
/// let arg = std::ffi::OsString::from("./results.mmf");
/// assert_eq!(*arg.to_location()?, Location::file("./results.mmf"));
/// assert_eq!(*std::ffi::OsStr::new("results").to_location()?, Location::parse("results")?);
/// # Ok::<(), mmf::channel::Error>(())
/// ```
impl ToLocation for std::ffi::OsStr {
    fn to_location(&self) -> Result<Cow<'_, Location>> {
        Location::parse_os(self).map(Cow::Owned)
    }
}

/// As an [`OsStr`](std::ffi::OsStr) is.
impl ToLocation for std::ffi::OsString {
    fn to_location(&self) -> Result<Cow<'_, Location>> {
        self.as_os_str().to_location()
    }
}

/// The string types a name is often held in: read as a `str` is.
macro_rules! to_location_as_str {
    ($($t:ty),*) => {$(
        impl ToLocation for $t {
            fn to_location(&self) -> Result<Cow<'_, Location>> {
                (**self).to_location()
            }
        }
    )*};
}
to_location_as_str!(
    Cow<'_, str>,
    Box<str>,
    std::rc::Rc<str>,
    std::sync::Arc<str>
);

impl<T: ToLocation + ?Sized> ToLocation for &T {
    fn to_location(&self) -> Result<Cow<'_, Location>> {
        (**self).to_location()
    }
}

impl<T: ToLocation + ?Sized> ToLocation for &mut T {
    fn to_location(&self) -> Result<Cow<'_, Location>> {
        (**self).to_location()
    }
}

/// Checks a shared-memory channel name: 1 to [`MAX_NAME_LEN`] bytes, no `/`, no NUL, no control
/// characters, no U+FFFD (the replacement character, with which [`list`](crate::list) shows
/// file names that are not UTF-8: so a name shown with it is never another channel's), and not
/// `.` or `..`.
///
/// # Errors
///
/// [`Error::InvalidName`], its `reason` saying which of these rules `name` breaks.
pub fn validate_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("it is too long");
    }
    if name.contains('/') {
        return bad("it contains '/'");
    }
    if name.contains('\0') {
        return bad("it contains NUL");
    }
    if name.chars().any(char::is_control) {
        return bad("it contains a control character");
    }
    if name.contains(char::REPLACEMENT_CHARACTER) {
        return bad(
            "it contains U+FFFD, the replacement character, which stands for bytes that are not \
             UTF-8 where a file name is shown",
        );
    }
    if name == "." || name == ".." {
        return bad("it is a directory name");
    }
    Ok(())
}

/// Whether `MMF_SHM_DIR` chose the shared-memory directory (set, and not empty).
pub(crate) fn shm_dir_chosen() -> bool {
    std::env::var_os("MMF_SHM_DIR").is_some_and(|d| !d.is_empty())
}

/// What to do about a shared-memory directory that cannot hold channels (missing, a file, one
/// that takes no files): `chosen`, the advice where `MMF_SHM_DIR` chose it, else to mount a
/// tmpfs at the system's or choose another.
pub(crate) fn shm_dir_advice(chosen: &'static str) -> &'static str {
    match shm_dir_chosen() {
        true => chosen,
        false => "mount a tmpfs there or set MMF_SHM_DIR to a directory for channels",
    }
}

/// The directory `path` lies in, as a path that names it: `.` for a bare file name (`ch.mmf`,
/// whose parent is the empty path), `/` for the root itself.
pub(crate) fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ if path.has_root() => Path::new("/"),
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_names_a_channel() {
        let shm = Location::shm("T").unwrap();
        assert_eq!(Location::from(ShmName::new("T").unwrap()), shm);
        assert_eq!(
            Location::from(PathBuf::from("t.mmf")),
            Location::File("t.mmf".into())
        );
        assert_eq!(
            Location::from(Path::new("t.mmf")),
            Location::File("t.mmf".into())
        );
        // Strings are read as `Location::parse` reads them.
        assert_eq!("T".to_location().unwrap().into_owned(), shm);
        assert_eq!(String::from("T").to_location().unwrap().into_owned(), shm);
        assert_eq!(
            "./t.mmf".to_location().unwrap().into_owned(),
            Location::File("./t.mmf".into())
        );
        assert!(matches!(
            "a\tb".to_location(),
            Err(Error::InvalidName { .. })
        ));
        assert!(matches!(
            "dir/".to_location(),
            Err(Error::IsADirectory { .. })
        ));
        // Names held in other string types.
        for held in [
            Cow::<str>::Borrowed("T").to_location(),
            Box::<str>::from("T").to_location(),
            std::rc::Rc::<str>::from("T").to_location(),
            std::sync::Arc::<str>::from("T").to_location(),
        ] {
            assert_eq!(held.unwrap().into_owned(), shm);
        }
        // A path is a file, with or without a '/'.
        assert_eq!(
            Path::new("t.mmf").to_location().unwrap().into_owned(),
            Location::File("t.mmf".into())
        );
        assert_eq!(
            PathBuf::from("T").to_location().unwrap().into_owned(),
            Location::File("T".into())
        );
        // A location is borrowed as it is, through any number of references.
        let bad = Location::file("t");
        assert!(matches!(
            (&&bad).to_location().unwrap(),
            Cow::Borrowed(l) if std::ptr::eq(l, &bad)
        ));
        let name = String::from("T");
        assert_eq!(name.to_location().unwrap().into_owned(), shm);
    }

    #[test]
    fn names() {
        for ok in [
            "Test",
            "a",
            "my-chan_1.v2",
            "ünïcødé",
            &"x".repeat(MAX_NAME_LEN),
        ] {
            validate_name(ok).unwrap();
        }
        for (bad, why) in [
            ("", "it is empty"),
            ("a/b", "it contains '/'"),
            ("/abs", "it contains '/'"),
            ("nul\0", "it contains NUL"),
            ("tab\t", "it contains a control character"),
            ("del\u{7f}", "it contains a control character"),
            ("c1\u{85}", "it contains a control character"),
            ("a\u{fffd}b", "it contains U+FFFD"),
            (".", "it is a directory name"),
            ("..", "it is a directory name"),
            (&"x".repeat(MAX_NAME_LEN + 1), "it is too long"),
        ] {
            let err = validate_name(bad).unwrap_err();
            assert!(
                matches!(&err, Error::InvalidName { reason, .. } if reason.starts_with(why)),
                "{bad:?}: {err}"
            );
        }
        // Dots are fine elsewhere, as in any file name.
        for ok in [
            "...",
            ".hidden",
            "a..b",
            "é".repeat(MAX_NAME_LEN / 2).as_str(),
        ] {
            validate_name(ok).unwrap();
        }
    }

    #[test]
    fn parse_splits_names_and_paths() {
        assert_eq!(Location::parse("T").unwrap(), Location::shm("T").unwrap());
        assert_eq!(
            Location::parse("/tmp/x").unwrap(),
            Location::File("/tmp/x".into())
        );
        assert!(Location::parse("/tmp/\0x").is_err());
    }
}
