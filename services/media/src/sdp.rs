//! A minimal SDP (RFC 4566) parser and writer and the offer/answer rules (RFC 3264) for one
//! G.711 audio stream with RFC 4733 telephone-events.
//!
//! Parsed: `v=`, `o=`, `s=`, `c=` (session and media level), `m=`, and the attributes
//! `rtpmap`, `fmtp`, `ptime`, `sendrecv`/`sendonly`/`recvonly`/`inactive` (session and media
//! level). Other lines are ignored (and not written back). Parsing never panics; an error
//! names the line and what is wrong.
//!
//! Hold: a re-INVITE offer with `a=sendonly` (or `inactive`, or the old-style
//! `c=IN IP4 0.0.0.0`) puts us on hold; [`answer`] mirrors the direction (`recvonly`,
//! `inactive`) and [`is_hold`] tells the edge to stop sending toward that side.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::g711::Codec;
use crate::rtp::MediaParams;
use crate::MediaError;

/// The payload type we use for telephone-event in our offers.
pub const TELEPHONE_EVENT_PT: u8 = 101;

/// A media direction attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    /// `a=sendrecv` (the default).
    #[default]
    SendRecv,
    /// `a=sendonly`: the side that wrote it sends but does not receive.
    SendOnly,
    /// `a=recvonly`: the side that wrote it receives but does not send.
    RecvOnly,
    /// `a=inactive`: neither.
    Inactive,
}

impl Direction {
    /// The attribute name (`sendrecv`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// The direction of an attribute name.
    pub fn from_attribute(name: &str) -> Option<Direction> {
        match name {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }

    fn from_flags(sends: bool, receives: bool) -> Direction {
        match (sends, receives) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    /// Whether the side that wrote this direction sends media.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether the side that wrote this direction receives media.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// The direction an answerer writes for an offer with this direction (RFC 3264 §6.1):
    /// `sendonly` → `recvonly`, `recvonly` → `sendonly`, the others unchanged.
    pub fn mirrored(self) -> Direction {
        Direction::from_flags(self.receives(), self.sends())
    }

    /// Both restrictions at once (e.g. the mirrored offer and our own wish).
    pub fn intersect(self, other: Direction) -> Direction {
        Direction::from_flags(
            self.sends() && other.sends(),
            self.receives() && other.receives(),
        )
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `o=` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// User name (`-` if none).
    pub username: String,
    /// Session id.
    pub session_id: String,
    /// Session version; must grow when a new offer or answer of the session changes.
    pub session_version: String,
    /// Address of the originator (`IN IP4`/`IN IP6` is derived from its form when written).
    pub address: String,
}

/// An `a=rtpmap` attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    /// Payload type.
    pub payload_type: u8,
    /// Encoding name as written (`PCMU`, `telephone-event`, ...).
    pub encoding: String,
    /// Clock rate.
    pub clock_rate: u32,
    /// Encoding parameters (channels for audio), if given.
    pub channels: Option<u8>,
}

/// An `a=fmtp` attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fmtp {
    /// Payload type.
    pub payload_type: u8,
    /// The parameters as written (`0-16` for telephone-event).
    pub parameters: String,
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// Media type (`audio`, `video`, ...).
    pub media: String,
    /// Port; 0 means the stream is rejected or disabled.
    pub port: u16,
    /// Transport protocol (`RTP/AVP`, ...).
    pub proto: String,
    /// Formats as written (payload type numbers for RTP).
    pub formats: Vec<String>,
    /// Media-level `c=` address.
    pub connection: Option<IpAddr>,
    /// `a=rtpmap` lines.
    pub rtpmaps: Vec<RtpMap>,
    /// `a=fmtp` lines.
    pub fmtps: Vec<Fmtp>,
    /// Media-level direction attribute.
    pub direction: Option<Direction>,
    /// `a=ptime` in milliseconds.
    pub ptime: Option<u32>,
}

impl MediaDescription {
    /// Whether this is an audio stream over plain RTP/AVP.
    pub fn is_rtp_audio(&self) -> bool {
        self.media.eq_ignore_ascii_case("audio") && self.proto.eq_ignore_ascii_case("RTP/AVP")
    }

    /// The formats that are payload type numbers, in order.
    pub fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.formats
            .iter()
            .filter_map(|f| f.parse::<u8>().ok().filter(|pt| *pt < 128))
    }

    /// The `a=rtpmap` of a payload type.
    pub fn rtpmap(&self, payload_type: u8) -> Option<&RtpMap> {
        self.rtpmaps.iter().find(|m| m.payload_type == payload_type)
    }

    /// The `a=fmtp` parameters of a payload type.
    pub fn fmtp(&self, payload_type: u8) -> Option<&str> {
        self.fmtps
            .iter()
            .find(|f| f.payload_type == payload_type)
            .map(|f| f.parameters.as_str())
    }

    /// The G.711 codecs of this stream in the order listed (PT 0 and 8; an `rtpmap` naming
    /// another encoding for them disqualifies them).
    pub fn codecs(&self) -> impl Iterator<Item = Codec> + '_ {
        self.payload_types().filter_map(|pt| {
            let codec = Codec::from_payload_type(pt)?;
            match self.rtpmap(pt) {
                Some(m) if !m.encoding.eq_ignore_ascii_case(codec.name()) => None,
                _ => Some(codec),
            }
        })
    }

    /// The payload type of `telephone-event/8000`, if listed.
    pub fn telephone_event(&self) -> Option<u8> {
        self.payload_types().find(|&pt| {
            self.rtpmap(pt).is_some_and(|m| {
                m.encoding.eq_ignore_ascii_case("telephone-event") && m.clock_rate == 8000
            })
        })
    }
}

/// A session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdp {
    /// `o=`.
    pub origin: Origin,
    /// `s=`.
    pub session_name: String,
    /// Session-level `c=` address.
    pub connection: Option<IpAddr>,
    /// Session-level direction attribute.
    pub direction: Option<Direction>,
    /// `m=` sections in order.
    pub media: Vec<MediaDescription>,
}

/// What the far end of an offer or answer wants, for one audio stream: where to send, which
/// codec, which telephone-event payload type, which direction (from its point of view).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteMedia {
    /// Where to send RTP; `None` when the address is `0.0.0.0`/`::` (old-style hold).
    pub address: Option<SocketAddr>,
    /// The codec to use (the first G.711 codec listed).
    pub codec: Codec,
    /// Its telephone-event payload type, if it listed one.
    pub telephone_event: Option<u8>,
    /// Its direction attribute (media level, else session level, else `sendrecv`).
    pub direction: Direction,
    /// Its `a=ptime`, if any.
    pub ptime: Option<u32>,
}

impl RemoteMedia {
    /// Whether this side has put us on hold: it does not want to receive, or its address is
    /// `0.0.0.0`. The edge should pause sending toward it ([`crate::MediaLeg::set_paused`]).
    pub fn is_hold(&self) -> bool {
        self.address.is_none() || !self.direction.receives()
    }

    /// The parameters of the media leg facing this side (without a signalling peer: add it
    /// with [`MediaParams::signalled_by`]).
    pub fn params(&self) -> MediaParams {
        MediaParams {
            remote: self.address,
            codec: self.codec,
            telephone_event: self.telephone_event,
            signalling_peer: None,
        }
    }
}

/// What we put in our own offers and answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMedia {
    /// Our media address (what the far end sends to).
    pub address: IpAddr,
    /// Our RTP port.
    pub port: u16,
    /// `o=` session id (constant for the dialog).
    pub session_id: u64,
    /// `o=` session version (increase it with [`LocalMedia::next_version`] for each changed
    /// SDP of the dialog).
    pub session_version: u64,
    /// Our direction wish (`sendrecv` normally; `sendonly` when we put the far end on hold).
    pub direction: Direction,
}

impl LocalMedia {
    /// Local media at `address:port`, sendrecv, session id from the clock, version 1.
    pub fn new(address: IpAddr, port: u16) -> LocalMedia {
        let session_id = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(1);
        LocalMedia {
            address,
            port,
            session_id,
            session_version: 1,
            direction: Direction::SendRecv,
        }
    }

    /// Increases the session version (call before building a changed offer or answer).
    pub fn next_version(&mut self) {
        self.session_version += 1;
    }

    fn origin(&self) -> Origin {
        Origin {
            username: "callgrid".to_owned(),
            session_id: self.session_id.to_string(),
            session_version: self.session_version.to_string(),
            address: self.address.to_string(),
        }
    }

    fn audio(&self, codecs: &[Codec], telephone_event: Option<(u8, String)>) -> MediaDescription {
        let mut formats: Vec<String> = codecs
            .iter()
            .map(|c| c.payload_type().to_string())
            .collect();
        let mut rtpmaps: Vec<RtpMap> = codecs
            .iter()
            .map(|c| RtpMap {
                payload_type: c.payload_type(),
                encoding: c.name().to_owned(),
                clock_rate: 8000,
                channels: None,
            })
            .collect();
        let mut fmtps = Vec::new();
        if let Some((pt, parameters)) = telephone_event {
            formats.push(pt.to_string());
            rtpmaps.push(RtpMap {
                payload_type: pt,
                encoding: "telephone-event".to_owned(),
                clock_rate: 8000,
                channels: None,
            });
            fmtps.push(Fmtp {
                payload_type: pt,
                parameters,
            });
        }
        MediaDescription {
            media: "audio".to_owned(),
            port: self.port,
            proto: "RTP/AVP".to_owned(),
            formats,
            connection: None,
            rtpmaps,
            fmtps,
            direction: Some(self.direction),
            ptime: Some(20),
        }
    }
}

/// The result of answering an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The answer to send.
    pub sdp: Sdp,
    /// What the offerer wants (address, chosen codec, its telephone-event PT, its direction).
    pub remote: RemoteMedia,
    /// The direction we answered.
    pub direction: Direction,
}

impl Sdp {
    /// Parses a session description (CRLF or LF line ends). Never panics.
    pub fn parse(body: &[u8]) -> Result<Sdp, MediaError> {
        let text = std::str::from_utf8(body).map_err(|e| MediaError::Sdp {
            line: 1 + body[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count(),
            reason: "not valid utf-8".to_owned(),
        })?;
        parse_text(text)
    }

    /// The first usable audio stream (`m=audio`, `RTP/AVP`, port not 0) and its index.
    pub fn audio(&self) -> Result<(usize, &MediaDescription), MediaError> {
        if let Some(found) = self
            .media
            .iter()
            .enumerate()
            .find(|(_, m)| m.is_rtp_audio() && m.port != 0)
        {
            return Ok(found);
        }
        let reason = if self.media.iter().any(|m| m.is_rtp_audio()) {
            "the audio stream has port 0".to_owned()
        } else if let Some(m) = self
            .media
            .iter()
            .find(|m| m.media.eq_ignore_ascii_case("audio"))
        {
            format!("audio over {} is not supported, only RTP/AVP", m.proto)
        } else {
            "no m=audio line".to_owned()
        };
        Err(MediaError::NoAudio(reason))
    }

    /// The direction of a media section: its own attribute, else the session's, else sendrecv.
    pub fn direction_of(&self, media: &MediaDescription) -> Direction {
        media.direction.or(self.direction).unwrap_or_default()
    }

    /// The connection address of a media section: its own `c=`, else the session's.
    pub fn address_of(&self, media: &MediaDescription) -> Option<IpAddr> {
        media.connection.or(self.connection)
    }

    /// What the writer of this SDP wants for its audio stream (see [`RemoteMedia`]).
    pub fn remote_media(&self) -> Result<RemoteMedia, MediaError> {
        let (_, audio) = self.audio()?;
        let codec = audio
            .codecs()
            .next()
            .ok_or_else(|| MediaError::NoCommonCodec {
                offered: audio.formats.join(" "),
            })?;
        let ip = self.address_of(audio).ok_or_else(|| {
            MediaError::NoAudio("no c= connection address for the audio stream".to_owned())
        })?;
        Ok(RemoteMedia {
            address: (!ip.is_unspecified()).then(|| SocketAddr::new(ip, audio.port)),
            codec,
            telephone_event: audio.telephone_event(),
            direction: self.direction_of(audio),
            ptime: audio.ptime,
        })
    }
}

/// The codec to use for an offer: the first of PCMU/PCMA in the offer's order.
pub fn choose_codec(offer: &Sdp) -> Result<Codec, MediaError> {
    let (_, audio) = offer.audio()?;
    audio
        .codecs()
        .next()
        .ok_or_else(|| MediaError::NoCommonCodec {
            offered: audio.formats.join(" "),
        })
}

/// Whether an SDP (a re-INVITE offer) puts its receiver on hold: its audio direction is
/// `sendonly` or `inactive`, or its audio address is `0.0.0.0`/`::`.
pub fn is_hold(sdp: &Sdp) -> bool {
    let Ok((_, audio)) = sdp.audio() else {
        return false;
    };
    !sdp.direction_of(audio).receives() || sdp.address_of(audio).is_some_and(|a| a.is_unspecified())
}

/// Answers an offer (RFC 3264): our address and port, the chosen codec (first of PCMU/PCMA in
/// the offer's order), telephone-event with the offer's payload type if offered, the
/// direction mirrored and restricted by `local.direction`; every other `m=` line is rejected
/// with port 0.
pub fn answer(offer: &Sdp, local: &LocalMedia) -> Result<Answer, MediaError> {
    let remote = offer.remote_media()?;
    let (index, audio) = offer.audio()?;
    let direction = remote.direction.mirrored().intersect(local.direction);
    let telephone_event = remote.telephone_event.map(|pt| {
        let events = audio.fmtp(pt).unwrap_or("0-16").to_owned();
        (pt, events)
    });
    let mut ours = local.audio(&[remote.codec], telephone_event);
    ours.direction = Some(direction);
    let media = offer
        .media
        .iter()
        .enumerate()
        .map(|(i, m)| {
            if i == index {
                ours.clone()
            } else {
                MediaDescription {
                    media: m.media.clone(),
                    port: 0,
                    proto: m.proto.clone(),
                    formats: m.formats.clone(),
                    connection: None,
                    rtpmaps: Vec::new(),
                    fmtps: Vec::new(),
                    direction: None,
                    ptime: None,
                }
            }
        })
        .collect();
    Ok(Answer {
        sdp: Sdp {
            origin: local.origin(),
            session_name: "callgrid".to_owned(),
            connection: Some(local.address),
            direction: None,
            media,
        },
        remote,
        direction,
    })
}

/// Builds an offer (for the legs toward agents): PCMU, PCMA, telephone-event 101 (`0-16`),
/// ptime 20, direction `local.direction`.
pub fn offer(local: &LocalMedia) -> Sdp {
    Sdp {
        origin: local.origin(),
        session_name: "callgrid".to_owned(),
        connection: Some(local.address),
        direction: None,
        media: vec![local.audio(
            &[Codec::Pcmu, Codec::Pcma],
            Some((TELEPHONE_EVENT_PT, "0-16".to_owned())),
        )],
    }
}

fn net_type(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "IN IP4"
    } else {
        "IN IP6"
    }
}

impl fmt::Display for Sdp {
    /// Writes the SDP with CRLF line ends.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.origin;
        let o_type = match o.address.parse::<IpAddr>() {
            Ok(IpAddr::V6(_)) => "IN IP6",
            _ => "IN IP4",
        };
        write!(f, "v=0\r\n")?;
        write!(
            f,
            "o={} {} {} {} {}\r\n",
            o.username, o.session_id, o.session_version, o_type, o.address
        )?;
        let name = if self.session_name.is_empty() {
            "-"
        } else {
            &self.session_name
        };
        write!(f, "s={name}\r\n")?;
        if let Some(c) = &self.connection {
            write!(f, "c={} {c}\r\n", net_type(c))?;
        }
        write!(f, "t=0 0\r\n")?;
        if let Some(d) = self.direction {
            write!(f, "a={d}\r\n")?;
        }
        for m in &self.media {
            write!(f, "m={} {} {}", m.media, m.port, m.proto)?;
            for fmt in &m.formats {
                write!(f, " {fmt}")?;
            }
            f.write_str("\r\n")?;
            if let Some(c) = &m.connection {
                write!(f, "c={} {c}\r\n", net_type(c))?;
            }
            for r in &m.rtpmaps {
                write!(
                    f,
                    "a=rtpmap:{} {}/{}",
                    r.payload_type, r.encoding, r.clock_rate
                )?;
                if let Some(ch) = r.channels {
                    write!(f, "/{ch}")?;
                }
                f.write_str("\r\n")?;
            }
            for p in &m.fmtps {
                write!(f, "a=fmtp:{} {}\r\n", p.payload_type, p.parameters)?;
            }
            if let Some(p) = m.ptime {
                write!(f, "a=ptime:{p}\r\n")?;
            }
            if let Some(d) = m.direction {
                write!(f, "a={d}\r\n")?;
            }
        }
        Ok(())
    }
}

fn err(line: usize, reason: impl Into<String>) -> MediaError {
    MediaError::Sdp {
        line,
        reason: reason.into(),
    }
}

/// Parses the address of a `c=` value (`IN IP4 1.2.3.4[/ttl]`).
fn parse_connection(n: usize, value: &str) -> Result<IpAddr, MediaError> {
    let mut parts = value.split_ascii_whitespace();
    let (Some(net), Some(addr_type), Some(addr), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(err(
            n,
            format!("c= must be \"IN IP4 <address>\", got {value:?}"),
        ));
    };
    if net != "IN" {
        return Err(err(n, format!("c= network type {net:?} is not IN")));
    }
    let addr = addr.split('/').next().unwrap_or(addr);
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| err(n, format!("c= address {addr:?} is not an ip address")))?;
    match (addr_type, ip) {
        ("IP4", IpAddr::V4(_)) | ("IP6", IpAddr::V6(_)) => Ok(ip),
        _ => Err(err(
            n,
            format!("c= address type {addr_type:?} does not match address {addr:?}"),
        )),
    }
}

fn parse_media(n: usize, value: &str) -> Result<MediaDescription, MediaError> {
    let mut parts = value.split_ascii_whitespace();
    let (Some(media), Some(port), Some(proto)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(err(
            n,
            format!("m= must be \"<media> <port> <proto> <formats>\", got {value:?}"),
        ));
    };
    let port_only = port.split('/').next().unwrap_or(port);
    let port: u16 = port_only
        .parse()
        .map_err(|_| err(n, format!("m={media} port {port_only:?} is not a number")))?;
    let formats: Vec<String> = parts.map(str::to_owned).collect();
    if formats.is_empty() {
        return Err(err(n, format!("m={media} lists no formats")));
    }
    if proto.to_ascii_uppercase().starts_with("RTP/") {
        if let Some(bad) = formats
            .iter()
            .find(|f| f.parse::<u8>().map_or(true, |pt| pt > 127))
        {
            return Err(err(
                n,
                format!("m={media} format {bad:?} is not a payload type (0-127)"),
            ));
        }
    }
    Ok(MediaDescription {
        media: media.to_owned(),
        port,
        proto: proto.to_owned(),
        formats,
        connection: None,
        rtpmaps: Vec::new(),
        fmtps: Vec::new(),
        direction: None,
        ptime: None,
    })
}

fn parse_payload_type(n: usize, attr: &str, pt: &str) -> Result<u8, MediaError> {
    pt.parse::<u8>().ok().filter(|pt| *pt < 128).ok_or_else(|| {
        err(
            n,
            format!("a={attr} payload type {pt:?} is not a number 0-127"),
        )
    })
}

fn parse_rtpmap(n: usize, value: &str) -> Result<RtpMap, MediaError> {
    let bad = || {
        err(
            n,
            format!("a=rtpmap must be \"<pt> <encoding>/<clock rate>\", got {value:?}"),
        )
    };
    let (pt, rest) = value.trim().split_once(' ').ok_or_else(bad)?;
    let payload_type = parse_payload_type(n, "rtpmap", pt)?;
    let mut parts = rest.trim().split('/');
    let encoding = parts.next().filter(|e| !e.is_empty()).ok_or_else(bad)?;
    let clock_rate = parts
        .next()
        .ok_or_else(bad)?
        .trim()
        .parse::<u32>()
        .map_err(|_| {
            err(
                n,
                format!("a=rtpmap clock rate in {value:?} is not a number"),
            )
        })?;
    let channels = match parts.next() {
        None => None,
        Some(c) => Some(
            c.trim()
                .parse::<u8>()
                .map_err(|_| err(n, format!("a=rtpmap channels in {value:?} is not a number")))?,
        ),
    };
    Ok(RtpMap {
        payload_type,
        encoding: encoding.to_owned(),
        clock_rate,
        channels,
    })
}

fn parse_text(text: &str) -> Result<Sdp, MediaError> {
    let mut origin = None;
    let mut session_name = None;
    let mut connection = None;
    let mut direction = None;
    let mut media: Vec<MediaDescription> = Vec::new();
    let mut seen_version = false;
    for (i, raw) in text.split('\n').enumerate() {
        let n = i + 1;
        let line = raw.trim_end_matches(['\r', ' ', '\t']);
        if line.is_empty() {
            continue;
        }
        let (kind, value) = match line.as_bytes() {
            [k, b'=', ..] if k.is_ascii_alphabetic() => (*k, &line[2..]),
            _ => {
                return Err(err(
                    n,
                    format!("expected \"<letter>=<value>\", got {line:?}"),
                ))
            }
        };
        if !seen_version {
            if kind != b'v' {
                return Err(err(n, "the first line must be v=0"));
            }
            if value.trim() != "0" {
                return Err(err(n, format!("unsupported sdp version {value:?}")));
            }
            seen_version = true;
            continue;
        }
        match kind {
            b'o' => {
                let parts: Vec<&str> = value.split_ascii_whitespace().collect();
                let [username, session_id, session_version, _net, _addr_type, address] = parts[..]
                else {
                    return Err(err(
                        n,
                        format!("o= must have 6 fields, got {}: {value:?}", parts.len()),
                    ));
                };
                origin = Some(Origin {
                    username: username.to_owned(),
                    session_id: session_id.to_owned(),
                    session_version: session_version.to_owned(),
                    address: address.to_owned(),
                });
            }
            // an empty name reads as a missing one ("-"), as we write it: parsed and written
            // back, a description parses to itself
            b's' if value.is_empty() => session_name = Some("-".to_owned()),
            b's' => session_name = Some(value.to_owned()),
            b'c' => {
                let ip = parse_connection(n, value)?;
                match media.last_mut() {
                    Some(m) => m.connection = Some(ip),
                    None => connection = Some(ip),
                }
            }
            b'm' => media.push(parse_media(n, value)?),
            b'a' => {
                let (name, attr_value) = match value.split_once(':') {
                    Some((name, v)) => (name, Some(v)),
                    None => (value, None),
                };
                if let Some(d) = Direction::from_attribute(name) {
                    match media.last_mut() {
                        Some(m) => m.direction = Some(d),
                        None => direction = Some(d),
                    }
                    continue;
                }
                let (Some(m), Some(v)) = (media.last_mut(), attr_value) else {
                    continue;
                };
                match name {
                    "rtpmap" => m.rtpmaps.push(parse_rtpmap(n, v)?),
                    "fmtp" => {
                        let (pt, params) = v.trim().split_once(' ').unwrap_or((v.trim(), ""));
                        m.fmtps.push(Fmtp {
                            payload_type: parse_payload_type(n, "fmtp", pt)?,
                            parameters: params.trim().to_owned(),
                        });
                    }
                    "ptime" => {
                        let ms = v.trim().parse::<u32>().map_err(|_| {
                            err(n, format!("a=ptime {v:?} is not a whole number of ms"))
                        })?;
                        m.ptime = Some(ms);
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    if !seen_version {
        return Err(err(0, "empty body"));
    }
    let origin = origin.ok_or_else(|| err(0, "no o= line"))?;
    if media.is_empty() {
        return Err(err(0, "no m= line"));
    }
    Ok(Sdp {
        origin,
        session_name: session_name.unwrap_or_else(|| "-".to_owned()),
        connection,
        direction,
        media,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const OFFER: &str = "v=0\r\n\
        o=alice 2890844526 2890844526 IN IP4 198.51.100.1\r\n\
        s=-\r\n\
        c=IN IP4 198.51.100.1\r\n\
        t=0 0\r\n\
        m=audio 49170 RTP/AVP 8 0 18 101\r\n\
        a=rtpmap:8 PCMA/8000\r\n\
        a=rtpmap:0 PCMU/8000\r\n\
        a=rtpmap:18 G729/8000\r\n\
        a=fmtp:18 annexb=no\r\n\
        a=rtpmap:101 telephone-event/8000\r\n\
        a=fmtp:101 0-15\r\n\
        a=ptime:20\r\n\
        a=sendrecv\r\n\
        m=video 51372 RTP/AVP 31\r\n\
        a=rtpmap:31 H261/90000\r\n";

    fn local() -> LocalMedia {
        LocalMedia {
            address: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 5)),
            port: 20000,
            session_id: 42,
            session_version: 1,
            direction: Direction::SendRecv,
        }
    }

    #[test]
    fn parses_an_offer() {
        let sdp = Sdp::parse(OFFER.as_bytes()).unwrap();
        assert_eq!(sdp.origin.username, "alice");
        assert_eq!(sdp.media.len(), 2);
        let (i, audio) = sdp.audio().unwrap();
        assert_eq!(i, 0);
        assert_eq!(audio.port, 49170);
        assert_eq!(
            audio.payload_types().collect::<Vec<_>>(),
            vec![8, 0, 18, 101]
        );
        assert_eq!(audio.telephone_event(), Some(101));
        assert_eq!(audio.fmtp(101), Some("0-15"));
        assert_eq!(audio.ptime, Some(20));
        assert_eq!(choose_codec(&sdp).unwrap(), Codec::Pcma);
        let remote = sdp.remote_media().unwrap();
        assert_eq!(remote.address, Some("198.51.100.1:49170".parse().unwrap()));
        assert_eq!(remote.direction, Direction::SendRecv);
        assert!(!is_hold(&sdp));
        assert!(!remote.is_hold());
    }

    #[test]
    fn lf_only_and_media_level_connection() {
        let sdp = Sdp::parse(
            b"v=0\no=- 1 1 IN IP6 ::1\ns=x\nt=0 0\nm=audio 4000 RTP/AVP 0\nc=IN IP6 2001:db8::1\n",
        )
        .unwrap();
        let remote = sdp.remote_media().unwrap();
        assert_eq!(remote.address, Some("[2001:db8::1]:4000".parse().unwrap()));
        assert_eq!(remote.codec, Codec::Pcmu);
        assert_eq!(remote.telephone_event, None);
    }

    #[test]
    fn answer_mirrors_and_rejects_other_streams() {
        let offer = Sdp::parse(OFFER.as_bytes()).unwrap();
        let a = answer(&offer, &local()).unwrap();
        assert_eq!(a.direction, Direction::SendRecv);
        assert_eq!(a.remote.codec, Codec::Pcma);
        let text = a.sdp.to_string();
        assert_eq!(
            text,
            "v=0\r\n\
             o=callgrid 42 1 IN IP4 203.0.113.5\r\n\
             s=callgrid\r\n\
             c=IN IP4 203.0.113.5\r\n\
             t=0 0\r\n\
             m=audio 20000 RTP/AVP 8 101\r\n\
             a=rtpmap:8 PCMA/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\n\
             a=fmtp:101 0-15\r\n\
             a=ptime:20\r\n\
             a=sendrecv\r\n\
             m=video 0 RTP/AVP 31\r\n"
        );
        // the answer parses back, and as an answer it names our side
        let back = Sdp::parse(text.as_bytes()).unwrap();
        assert_eq!(back, a.sdp);
        let ours = back.remote_media().unwrap();
        assert_eq!(ours.address, Some("203.0.113.5:20000".parse().unwrap()));
        assert_eq!(ours.telephone_event, Some(101));
    }

    #[test]
    fn hold_and_unhold_by_reinvite() {
        let hold = OFFER.replace("a=sendrecv", "a=sendonly");
        let offer = Sdp::parse(hold.as_bytes()).unwrap();
        assert!(is_hold(&offer));
        let a = answer(&offer, &local()).unwrap();
        assert_eq!(a.direction, Direction::RecvOnly);
        assert!(a.remote.is_hold());
        assert!(a.sdp.to_string().contains("a=recvonly\r\n"));

        let inactive = OFFER.replace("a=sendrecv", "a=inactive");
        let offer = Sdp::parse(inactive.as_bytes()).unwrap();
        assert!(is_hold(&offer));
        assert_eq!(
            answer(&offer, &local()).unwrap().direction,
            Direction::Inactive
        );

        // session-level direction applies when the media has none
        let session_level = OFFER
            .replace("a=sendrecv\r\n", "")
            .replace("t=0 0\r\n", "t=0 0\r\na=sendonly\r\n");
        let offer = Sdp::parse(session_level.as_bytes()).unwrap();
        assert!(is_hold(&offer));
        assert_eq!(
            answer(&offer, &local()).unwrap().direction,
            Direction::RecvOnly
        );

        // old style: c=0.0.0.0
        let zero = OFFER.replace("c=IN IP4 198.51.100.1", "c=IN IP4 0.0.0.0");
        let offer = Sdp::parse(zero.as_bytes()).unwrap();
        assert!(is_hold(&offer));
        let a = answer(&offer, &local()).unwrap();
        assert_eq!(a.remote.address, None);
        assert!(a.remote.is_hold());

        // unhold
        let offer = Sdp::parse(OFFER.as_bytes()).unwrap();
        assert!(!is_hold(&offer));

        // an offerer that only receives gets sendonly; our own hold wish is applied
        let recvonly = OFFER.replace("a=sendrecv", "a=recvonly");
        let offer = Sdp::parse(recvonly.as_bytes()).unwrap();
        assert_eq!(
            answer(&offer, &local()).unwrap().direction,
            Direction::SendOnly
        );
        let mut on_hold = local();
        on_hold.direction = Direction::SendOnly;
        let offer = Sdp::parse(OFFER.as_bytes()).unwrap();
        assert_eq!(
            answer(&offer, &on_hold).unwrap().direction,
            Direction::SendOnly
        );
    }

    #[test]
    fn our_offer() {
        let mut l = local();
        l.direction = Direction::SendOnly;
        l.next_version();
        let sdp = offer(&l);
        let text = sdp.to_string();
        assert!(text.contains("o=callgrid 42 2 IN IP4 203.0.113.5\r\n"));
        assert!(text.contains("m=audio 20000 RTP/AVP 0 8 101\r\n"));
        assert!(text.contains("a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"));
        assert!(text.contains("a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"));
        assert!(text.contains("a=sendonly\r\n"));
        assert!(is_hold(&sdp));
        assert_eq!(Sdp::parse(text.as_bytes()).unwrap(), sdp);
    }

    #[test]
    fn codec_choice_and_errors() {
        let no_g711 = OFFER.replace("RTP/AVP 8 0 18 101", "RTP/AVP 18 101");
        let e = choose_codec(&Sdp::parse(no_g711.as_bytes()).unwrap()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no common codec: offered payload types [18 101], supported are pcmu (0) and pcma (8)"
        );
        let pcmu_first = OFFER.replace("RTP/AVP 8 0 18 101", "RTP/AVP 18 0 8 101");
        assert_eq!(
            choose_codec(&Sdp::parse(pcmu_first.as_bytes()).unwrap()).unwrap(),
            Codec::Pcmu
        );
        let srtp = OFFER.replace("m=audio 49170 RTP/AVP", "m=audio 49170 RTP/SAVP");
        let e = Sdp::parse(srtp.as_bytes()).unwrap().audio().unwrap_err();
        assert!(e.to_string().contains("RTP/SAVP is not supported"), "{e}");
        let rejected = OFFER.replace("m=audio 49170", "m=audio 0");
        let e = Sdp::parse(rejected.as_bytes())
            .unwrap()
            .audio()
            .unwrap_err();
        assert!(e.to_string().contains("port 0"), "{e}");
        let no_c = OFFER.replace("c=IN IP4 198.51.100.1\r\n", "");
        let e = answer(&Sdp::parse(no_c.as_bytes()).unwrap(), &local()).unwrap_err();
        assert!(e.to_string().contains("no c= connection address"), "{e}");
    }

    #[test]
    fn parse_errors_name_the_line_and_problem() {
        let cases: &[(&str, &str)] = &[
            ("", "sdp line 0: empty body"),
            ("x", "sdp line 1: expected \"<letter>=<value>\", got \"x\""),
            (
                "o=a 1 1 IN IP4 1.2.3.4\r\n",
                "sdp line 1: the first line must be v=0",
            ),
            ("v=1\r\n", "sdp line 1: unsupported sdp version \"1\""),
            (
                "v=0\r\ns=-\r\nm=audio 1 RTP/AVP 0\r\n",
                "sdp line 0: no o= line",
            ),
            (
                "v=0\r\no=a 1 1 IN IP4 1.2.3.4\r\n",
                "sdp line 0: no m= line",
            ),
            (
                "v=0\r\no=a 1\r\n",
                "sdp line 2: o= must have 6 fields, got 2: \"a 1\"",
            ),
            (
                "v=0\r\no=a 1 1 IN IP4 h\r\nc=IN IP4 example.com\r\n",
                "sdp line 3: c= address \"example.com\" is not an ip address",
            ),
            (
                "v=0\r\no=a 1 1 IN IP4 h\r\nc=IN IP6 1.2.3.4\r\n",
                "sdp line 3: c= address type \"IP6\" does not match address \"1.2.3.4\"",
            ),
            (
                "v=0\r\no=a 1 1 IN IP4 h\r\nm=audio abc RTP/AVP 0\r\n",
                "sdp line 3: m=audio port \"abc\" is not a number",
            ),
            (
                "v=0\r\no=a 1 1 IN IP4 h\r\nm=audio 5 RTP/AVP 0 x\r\n",
                "sdp line 3: m=audio format \"x\" is not a payload type (0-127)",
            ),
            (
                "v=0\r\no=a 1 1 IN IP4 h\r\nm=audio 5 RTP/AVP\r\n",
                "sdp line 3: m=audio lists no formats",
            ),
            (
                "v=0\r\no=a 1 1 IN IP4 h\r\nm=audio 5 RTP/AVP 0\r\na=rtpmap:0 PCMU\r\n",
                "sdp line 4: a=rtpmap must be \"<pt> <encoding>/<clock rate>\", got \"0 PCMU\"",
            ),
            (
                "v=0\r\no=a 1 1 IN IP4 h\r\nm=audio 5 RTP/AVP 0\r\na=ptime:2x\r\n",
                "sdp line 4: a=ptime \"2x\" is not a whole number of ms",
            ),
            (
                "v=0\r\no=a 1 1 IN IP4 h\r\nm=audio 5 RTP/AVP 0\r\na=fmtp:300 0-16\r\n",
                "sdp line 4: a=fmtp payload type \"300\" is not a number 0-127",
            ),
        ];
        for (body, expected) in cases {
            let e = Sdp::parse(body.as_bytes()).unwrap_err();
            assert_eq!(&e.to_string(), expected, "body {body:?}");
        }
        let e = Sdp::parse(b"v=0\r\no=\xff\r\n").unwrap_err();
        assert_eq!(e.to_string(), "sdp line 2: not valid utf-8");
    }

    #[test]
    fn rtpmap_overriding_a_static_type_disqualifies_it() {
        let odd = OFFER.replace("a=rtpmap:8 PCMA/8000", "a=rtpmap:8 opus/48000/2");
        let sdp = Sdp::parse(odd.as_bytes()).unwrap();
        assert_eq!(choose_codec(&sdp).unwrap(), Codec::Pcmu);
    }

    #[test]
    fn an_empty_session_name_reads_as_we_write_it() {
        let body = "v=0\r\no=a 1 1 IN IP4 1.2.3.4\r\ns=x\r\nt=0 0\r\ns=\r\nm=audio 5 RTP/AVP 0\r\n";
        let sdp = Sdp::parse(body.as_bytes()).unwrap();
        assert_eq!(sdp.session_name, "-");
        assert_eq!(Sdp::parse(sdp.to_string().as_bytes()).unwrap(), sdp);
    }

    #[test]
    fn direction_algebra() {
        use Direction::*;
        assert_eq!(SendOnly.mirrored(), RecvOnly);
        assert_eq!(RecvOnly.mirrored(), SendOnly);
        assert_eq!(Inactive.mirrored(), Inactive);
        assert_eq!(SendRecv.mirrored(), SendRecv);
        assert_eq!(SendOnly.intersect(RecvOnly), Inactive);
        assert_eq!(SendRecv.intersect(SendOnly), SendOnly);
    }
}
