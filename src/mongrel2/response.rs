//! The raw HTTP/1.1 response a handler writes for a connection, read back so
//! that the proxy can give it to its client through actix-web: the status
//! line and headers, then a body framed by `Content-Length`, by chunked
//! transfer coding, or by the end of the response (close-delimited).
//!
//! A response may come in any number of reply messages, cut anywhere; an
//! empty reply (the handler closing the connection) ends a close-delimited
//! body, and is an error anywhere else before the end. Sans-IO: the caller
//! feeds bytes and gets [`Part`]s; nothing here panics on input.

use bytes::{Bytes, BytesMut};

/// Most headers a response may carry.
const MAX_HEADERS: usize = 100;
/// Longest chunk-size line (with extensions) and most bytes of trailers.
const MAX_CHUNK_LINE: usize = 1024;
const MAX_TRAILERS: usize = 8192;

/// A response's status line and headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    pub reason: String,
    /// Every header as sent, names as written.
    pub headers: Vec<(String, Vec<u8>)>,
    /// How the body is framed.
    pub framing: Framing,
    /// The handler asked for the connection to close after this response
    /// (`Connection: close`, or HTTP/1.0 without keep-alive).
    pub close: bool,
}

impl Head {
    /// The first value of a header, by name in any case.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

/// How a response's body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (HEAD, 1xx, 204, 304).
    None,
    Length(u64),
    Chunked,
    /// Ends when the handler closes the connection.
    Close,
}

/// What the bytes fed so far hold, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Head(Head),
    Body(Bytes),
    /// The response is complete.
    End,
}

/// Why a handler's reply is not a response the proxy can pass on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error("bad status line or header: {0}")]
    Head(String),
    #[error("response head over {0} bytes")]
    HeadTooLong(usize),
    #[error("interim {0} responses are not supported")]
    Interim(u16),
    #[error("bad Content-Length")]
    ContentLength,
    #[error("both Content-Length and Transfer-Encoding")]
    Ambiguous,
    #[error("bad chunked encoding: {0}")]
    Chunked(&'static str),
    #[error("closed before the response was complete")]
    Incomplete,
    #[error("bytes after the end of the response")]
    Extra,
}

enum State {
    Head(BytesMut),
    Length(u64),
    Chunk(Chunk),
    Close,
    Done,
    Failed,
}

enum Chunk {
    /// Reading a chunk-size line.
    Size(Vec<u8>),
    /// Bytes of chunk data left.
    Data(u64),
    /// The CRLF after chunk data: how many of its bytes are read.
    DataEnd(u8),
    /// Trailer lines after the last chunk: bytes read, and the current line.
    Trailers(usize, Vec<u8>),
}

/// Reads one response.
pub struct ResponseParser {
    state: State,
    /// The request was HEAD: no body whatever the headers say.
    head_request: bool,
    max_head_bytes: usize,
}

impl ResponseParser {
    pub fn new(head_request: bool, max_head_bytes: usize) -> ResponseParser {
        ResponseParser {
            state: State::Head(BytesMut::new()),
            head_request,
            max_head_bytes,
        }
    }

    /// Whether the whole response has been read.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Reads the bytes of one reply message into `out`. After an error the
    /// parser refuses everything.
    pub fn feed(&mut self, mut data: &[u8], out: &mut Vec<Part>) -> Result<(), ResponseError> {
        let result = loop {
            if data.is_empty() {
                break Ok(());
            }
            match self.step(data, out) {
                Ok(used) => data = &data[used..],
                Err(e) => break Err(e),
            }
        };
        if result.is_err() {
            self.state = State::Failed;
        }
        result
    }

    /// The handler closed the connection (an empty reply).
    pub fn close(&mut self, out: &mut Vec<Part>) -> Result<(), ResponseError> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Close => {
                out.push(Part::End);
                Ok(())
            }
            State::Done => Ok(()),
            _ => {
                self.state = State::Failed;
                Err(ResponseError::Incomplete)
            }
        }
    }

    /// Consumes a prefix of `data`; how many bytes.
    fn step(&mut self, data: &[u8], out: &mut Vec<Part>) -> Result<usize, ResponseError> {
        match &mut self.state {
            State::Head(buf) => {
                let before = buf.len();
                buf.extend_from_slice(data);
                match self.parse_head()? {
                    Some((head, len)) => {
                        self.start_body(&head);
                        out.push(Part::Head(head));
                        if self.is_done() {
                            out.push(Part::End);
                        }
                        Ok(len - before)
                    }
                    None => Ok(data.len()),
                }
            }
            State::Length(left) => {
                let n = (*left).min(data.len() as u64) as usize;
                *left -= n as u64;
                out.push(Part::Body(Bytes::copy_from_slice(&data[..n])));
                if *left == 0 {
                    self.state = State::Done;
                    out.push(Part::End);
                }
                Ok(n)
            }
            State::Close => {
                out.push(Part::Body(Bytes::copy_from_slice(data)));
                Ok(data.len())
            }
            State::Chunk(chunk) => {
                let (used, done) = chunk.step(data, out)?;
                if done {
                    self.state = State::Done;
                    out.push(Part::End);
                }
                Ok(used)
            }
            State::Done => Err(ResponseError::Extra),
            State::Failed => Err(ResponseError::Incomplete),
        }
    }

    /// The head and its length in the buffer, once all of it is there.
    fn parse_head(&mut self) -> Result<Option<(Head, usize)>, ResponseError> {
        let State::Head(buf) = &self.state else {
            return Ok(None);
        };
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        let len = match response.parse(buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() > self.max_head_bytes => {
                return Err(ResponseError::HeadTooLong(self.max_head_bytes));
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(ResponseError::Head(e.to_string())),
        };
        if len > self.max_head_bytes {
            return Err(ResponseError::HeadTooLong(self.max_head_bytes));
        }
        let status = response.code.unwrap_or(0);
        if (100..200).contains(&status) && status != 101 {
            return Err(ResponseError::Interim(status));
        }
        let headers: Vec<(String, Vec<u8>)> = response
            .headers
            .iter()
            .map(|h| (h.name.to_string(), h.value.to_vec()))
            .collect();
        let reason = response.reason.unwrap_or("").to_string();
        let http10 = response.version == Some(0);
        let mut head = Head {
            status,
            reason,
            headers,
            framing: Framing::None,
            close: false,
        };
        let connection = head
            .header("connection")
            .map(|v| String::from_utf8_lossy(v).to_ascii_lowercase())
            .unwrap_or_default();
        head.close = connection.contains("close") || (http10 && !connection.contains("keep-alive"));
        head.framing = self.framing(&head)?;
        Ok(Some((head, len)))
    }

    fn framing(&self, head: &Head) -> Result<Framing, ResponseError> {
        if self.head_request || matches!(head.status, 101 | 204 | 304) {
            return Ok(Framing::None);
        }
        let lengths: Vec<&[u8]> = head
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.as_slice())
            .collect();
        let coding = head
            .headers
            .iter()
            .rfind(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"));
        if let Some((_, coding)) = coding {
            if !lengths.is_empty() {
                return Err(ResponseError::Ambiguous);
            }
            let coding = String::from_utf8_lossy(coding).to_ascii_lowercase();
            let last = coding.rsplit(',').next().unwrap_or("").trim();
            return Ok(if last == "chunked" {
                Framing::Chunked
            } else {
                Framing::Close
            });
        }
        let Some(first) = lengths.first() else {
            return Ok(Framing::Close);
        };
        if lengths.iter().any(|l| l != first)
            || first.is_empty()
            || first.len() > 18
            || !first.iter().all(u8::is_ascii_digit)
        {
            return Err(ResponseError::ContentLength);
        }
        let n = std::str::from_utf8(first)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(ResponseError::ContentLength)?;
        Ok(Framing::Length(n))
    }

    fn start_body(&mut self, head: &Head) {
        self.state = match head.framing {
            Framing::None | Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Chunk(Chunk::Size(Vec::new())),
            Framing::Close => State::Close,
        };
    }
}

impl Chunk {
    /// Consumes a prefix of `data`: (bytes used, whether the body ended).
    fn step(&mut self, data: &[u8], out: &mut Vec<Part>) -> Result<(usize, bool), ResponseError> {
        match self {
            Chunk::Size(line) => {
                let Some(nl) = data.iter().position(|&b| b == b'\n') else {
                    line.extend_from_slice(data);
                    if line.len() > MAX_CHUNK_LINE {
                        return Err(ResponseError::Chunked("chunk-size line too long"));
                    }
                    return Ok((data.len(), false));
                };
                line.extend_from_slice(&data[..nl]);
                if line.len() > MAX_CHUNK_LINE {
                    return Err(ResponseError::Chunked("chunk-size line too long"));
                }
                let size = chunk_size(line)?;
                *self = if size == 0 {
                    Chunk::Trailers(0, Vec::new())
                } else {
                    Chunk::Data(size)
                };
                Ok((nl + 1, false))
            }
            Chunk::Data(left) => {
                let n = (*left).min(data.len() as u64) as usize;
                *left -= n as u64;
                out.push(Part::Body(Bytes::copy_from_slice(&data[..n])));
                if *left == 0 {
                    *self = Chunk::DataEnd(0);
                }
                Ok((n, false))
            }
            Chunk::DataEnd(seen) => {
                let expected = b"\r\n"[*seen as usize];
                if data[0] != expected {
                    return Err(ResponseError::Chunked("no CRLF after chunk data"));
                }
                *seen += 1;
                if *seen == 2 {
                    *self = Chunk::Size(Vec::new());
                }
                Ok((1, false))
            }
            Chunk::Trailers(total, line) => {
                let nl = data.iter().position(|&b| b == b'\n');
                let used = nl.map_or(data.len(), |i| i + 1);
                *total += used;
                if *total > MAX_TRAILERS {
                    return Err(ResponseError::Chunked("trailers too long"));
                }
                let Some(nl) = nl else {
                    line.extend_from_slice(data);
                    return Ok((used, false));
                };
                line.extend_from_slice(&data[..nl]);
                // An empty line ends the trailers (and the body); trailers
                // themselves are not passed on.
                let end = line.is_empty() || line.as_slice() == b"\r";
                line.clear();
                Ok((used, end))
            }
        }
    }
}

/// The hex size at the start of a chunk-size line (extensions ignored).
fn chunk_size(line: &[u8]) -> Result<u64, ResponseError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let hex = line.split(|&b| b == b';').next().unwrap_or_default();
    let hex = hex.strip_suffix(b" ").unwrap_or(hex);
    if hex.is_empty() || hex.len() > 15 || !hex.iter().all(u8::is_ascii_hexdigit) {
        return Err(ResponseError::Chunked("bad chunk size"));
    }
    let text = std::str::from_utf8(hex).map_err(|_| ResponseError::Chunked("bad chunk size"))?;
    u64::from_str_radix(text, 16).map_err(|_| ResponseError::Chunked("bad chunk size"))
}

#[cfg(test)]
#[path = "response_tests.rs"]
mod tests;
