//! Length-prefixed frames. Two steps, as in mini-redis: first the 4-byte
//! length is read and checked against its bound, only then is room for the
//! frame allocated and the rest read.

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Smallest possible request: api_key, api_version, correlation_id.
pub const REQUEST_HEADER_BYTES_MIN: usize = 8;

/// Why a frame could not be read; every case closes the connection.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("connection closed by peer")]
    Closed,
    #[error("frame of {0} bytes is outside [8, socket.request.max.bytes]")]
    BadLength(i64),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// No request and nothing in flight for `connections.max.idle.ms`.
    #[error("idle for connections.max.idle.ms ({0} ms)")]
    Idle(u64),
    /// A request's first bytes came, the rest not within the bound.
    #[error("request incomplete {0} ms after its first bytes (connections.max.idle.ms)")]
    Incomplete(u64),
}

/// Bytes asked of the socket at a time when no frame size is known yet.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Largest allocation made ahead of a frame on the guess that it is as
/// large as the last one (`max.request.size`'s default): a connection that
/// once sent a 100 MB request does not reserve 100 MB while it is idle.
const GUESS_BYTES_MAX: usize = 1024 * 1024;

/// Reads length-prefixed frames from a socket into one buffer and splits
/// them off it without copying.
///
/// Written by hand rather than with tokio's `BufReader` or tokio-util's
/// `LengthDelimitedCodec` because of one copy: both read ahead into a
/// buffer of their own and move the start of every large frame out of it
/// (a `BufReader` of 64 KiB copied 64 KiB of each 256 KiB produce request,
/// 7% of the broker's CPU in saturated produce; docs/BENCHMARKS.md). Here
/// the next allocation is sized for a frame like the last one, so a
/// producer's requests of one size are read straight into the buffer they
/// are served from. Small frames share a 64 KiB allocation; only a frame
/// that straddles the end of one is copied (its first bytes).
pub struct FrameReader<R> {
    reader: R,
    buffer: BytesMut,
    /// Length of the last frame, prefix included: the size guess for the next.
    last_frame_bytes: usize,
    /// Bytes moved to a new allocation so far (the copies this avoids).
    moved_bytes: u64,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(reader: R) -> Self {
        FrameReader {
            reader,
            buffer: BytesMut::new(),
            last_frame_bytes: 0,
            moved_bytes: 0,
        }
    }

    /// Waits until the next frame's first bytes are buffered; `false` when
    /// the peer closed first. Cancel-safe: a read either lands in the
    /// buffer or does not happen.
    pub async fn fill(&mut self) -> std::io::Result<bool> {
        if !self.buffer.is_empty() {
            return Ok(true);
        }
        let guess = self.last_frame_bytes.min(GUESS_BYTES_MAX);
        self.make_room(guess.max(READ_CHUNK_BYTES));
        Ok(self.reader.read_buf(&mut self.buffer).await? > 0)
    }

    /// Reads one frame. `request_bytes_max` bounds the allocation: a larger
    /// length prefix (a TLS ClientHello, `GET ` …) is refused before
    /// allocating.
    pub async fn read_frame(&mut self, request_bytes_max: usize) -> Result<Bytes, FrameError> {
        if !self.fill().await? {
            return Err(FrameError::Closed);
        }
        self.read_to(4).await?;
        let length = i32::from_be_bytes([
            self.buffer[0],
            self.buffer[1],
            self.buffer[2],
            self.buffer[3],
        ]);
        if length < REQUEST_HEADER_BYTES_MIN as i32 || length as i64 > request_bytes_max as i64 {
            return Err(FrameError::BadLength(length as i64));
        }
        let total = 4 + length as usize;
        self.read_to(total).await?;
        self.buffer.advance(4);
        self.last_frame_bytes = total;
        Ok(self.buffer.split_to(total - 4).freeze())
    }

    /// Reads until at least `wanted` bytes are buffered.
    async fn read_to(&mut self, wanted: usize) -> Result<(), FrameError> {
        self.make_room(wanted);
        while self.buffer.len() < wanted {
            // Into the spare capacity, never zeroed first (zeroing each
            // 1 MB produce request cost ~4% of the broker's CPU). The
            // capacity is at least `wanted`, so the read is never empty.
            if self.reader.read_buf(&mut self.buffer).await? == 0 {
                return Err(FrameError::Closed);
            }
        }
        Ok(())
    }

    /// Makes the buffer's capacity at least `wanted` bytes from its start.
    /// A new allocation is made for exactly that much, or for 64 KiB of
    /// small frames; the bytes already buffered (a frame's start) move to it.
    fn make_room(&mut self, wanted: usize) {
        if self.buffer.capacity() >= wanted {
            return;
        }
        let mut fresh = BytesMut::with_capacity(wanted.max(READ_CHUNK_BYTES));
        fresh.extend_from_slice(&self.buffer);
        self.moved_bytes += self.buffer.len() as u64;
        self.buffer = fresh;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_are_bounded_before_allocation() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![0x7f, 0xff, 0xff, 0xff], "bad"),
            (b"GET / HTTP/1.1\r\n".to_vec(), "bad"),
            (vec![0x16, 0x03, 0x01, 0x02, 0x00], "bad"),
            (vec![0, 0, 0, 4, 1, 2, 3, 4], "bad"),
            (vec![0, 0, 0, 8, 0, 18, 0, 0, 0, 0, 0, 1], "ok"),
            (vec![0, 0, 0, 9, 0, 18, 0, 0], "closed"),
            (vec![], "closed"),
        ];
        for (input, expected) in cases {
            let mut reader = FrameReader::new(&input[..]);
            let result = reader.read_frame(1024).await;
            let kind = match result {
                Ok(_) => "ok",
                Err(FrameError::BadLength(_)) => "bad",
                Err(FrameError::Closed) => "closed",
                Err(FrameError::Io(_)) => "io",
                Err(FrameError::Idle(_) | FrameError::Incomplete(_)) => "timeout",
            };
            assert_eq!(kind, expected, "input {input:?}");
        }
    }

    /// Frames larger than one socket read, back to back: each is read whole
    /// and none takes bytes of the next.
    #[tokio::test]
    async fn frames_arrive_in_pieces_and_stop_at_their_end() {
        let (mut writer, reader) = tokio::io::duplex(1000);
        let frames: Vec<Vec<u8>> = [100_000usize, 8, 70_001]
            .iter()
            .enumerate()
            .map(|(tag, len)| (0..*len).map(|i| (i * 7 + tag) as u8).collect())
            .collect();
        let sent = frames.clone();
        let writing = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for frame in sent {
                writer
                    .write_all(&(frame.len() as i32).to_be_bytes())
                    .await
                    .unwrap();
                writer.write_all(&frame).await.unwrap();
            }
        });
        let mut reader = FrameReader::new(reader);
        for frame in &frames {
            let read = reader.read_frame(1 << 20).await.unwrap();
            assert_eq!(&read[..], &frame[..]);
        }
        writing.await.unwrap();
        assert!(matches!(
            reader.read_frame(1 << 20).await,
            Err(FrameError::Closed)
        ));
    }

    fn framed(frames: &[Vec<u8>]) -> Vec<u8> {
        let mut wire = Vec::new();
        for frame in frames {
            wire.extend_from_slice(&(frame.len() as i32).to_be_bytes());
            wire.extend_from_slice(frame);
        }
        wire
    }

    /// A producer's requests of one size are read where they are served
    /// from: only the first one, whose size was not known when its first
    /// 64 KiB were read, is moved.
    #[tokio::test]
    async fn frames_of_one_size_are_not_copied() {
        let frames: Vec<Vec<u8>> = (0..10u8).map(|tag| vec![tag; 256 * 1024]).collect();
        let wire = framed(&frames);
        let mut reader = FrameReader::new(&wire[..]);
        for frame in &frames {
            assert_eq!(&reader.read_frame(1 << 20).await.unwrap()[..], &frame[..]);
        }
        assert_eq!(reader.moved_bytes, READ_CHUNK_BYTES as u64);
    }

    /// Small frames share allocations; what moves is at most one frame's
    /// start per 64 KiB read.
    #[tokio::test]
    async fn small_frames_move_only_what_straddles_an_allocation() {
        let frames: Vec<Vec<u8>> = (0..2000usize)
            .map(|i| vec![i as u8; 8 + (i * 37) % 300])
            .collect();
        let wire = framed(&frames);
        let mut reader = FrameReader::new(&wire[..]);
        for frame in &frames {
            assert_eq!(&reader.read_frame(1 << 20).await.unwrap()[..], &frame[..]);
        }
        let allocations = wire.len() / READ_CHUNK_BYTES + 1;
        assert!(
            reader.moved_bytes <= (allocations * 312) as u64,
            "moved {} bytes over {} bytes",
            reader.moved_bytes,
            wire.len()
        );
    }
}
