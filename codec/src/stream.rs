//! Typed values of a followed name, as a stream (feature `async`): [`ValueStreamExt::typed`].

use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use mmf_core::{Follower, Meta, ValueStream};
use serde::de::DeserializeOwned;

use crate::{decode_read, Result};

/// Typed items for the stream of a followed name's values, [`ValueStream`] (feature `async`).
///
/// Sealed: implemented for [`ValueStream`] only.
pub trait ValueStreamExt: crate::sealed::Sealed {
    /// Decodes every value of the stream into `T`, as [`ChannelExt::read`](crate::ChannelExt::read)
    /// decodes one: a MessagePack or JSON value as serde decodes it, a text value into a type
    /// that takes a string.
    ///
    /// A value that cannot become a `T` (another shape, or bytes) is an `Err` item that carries
    /// its generation ([`Error::generation`](crate::Error::generation)), and the stream goes on
    /// with the next value: one bad value from another process does not end a service's
    /// subscription. The stream's own errors are [`ValueStream`]'s (as
    /// [`Error::Channel`](crate::Error::Channel)); it never ends either.
    ///
    /// ```
    /// use std::time::Duration;
    /// use mmf::{Channel, ChannelExt, ValueStreamExt};
    /// use mmf::Follower;
    /// use serde::Deserialize;
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     struct W(std::thread::Thread);
    /// #     impl std::task::Wake for W { fn wake(self: std::sync::Arc<Self>) { self.0.unpark() } }
    /// #     let waker = std::sync::Arc::new(W(std::thread::current())).into();
    /// #     let mut cx = std::task::Context::from_waker(&waker);
    /// #     let mut f = std::pin::pin!(f);
    /// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v } std::thread::park() }
    /// # }
    /// // `block_on`: your executor's (tokio's `Runtime::block_on`, `futures::executor::block_on`);
    /// // a minimal one is hidden in this example.
    ///
    /// #[derive(Deserialize, Debug, PartialEq)]
    /// struct Config { threads: u32 }
    ///
    /// # let name = format!("typed-doc-{}", std::process::id());
    /// let writer = Channel::create(&name, 256)?;
    /// writer.publish_str("not a config")?;
    /// let follower = Follower::open(&name, Duration::ZERO)?;
    /// let mut configs = follower.values(0).typed::<Config>();
    ///
    /// // `configs.recv().await` in async code, or `StreamExt::next`.
    /// let err = block_on(configs.recv()).unwrap_err();   // the text: said, and skipped
    /// assert_eq!(err.generation(), Some(1));
    /// std::thread::spawn(move || writer.publish(&serde_json::json!({ "threads": 8 })));
    /// let (meta, config) = block_on(configs.recv())?;
    /// assert_eq!((meta.generation, config), (2, Config { threads: 8 }));
    /// # Channel::remove(&name)?;
    /// # Ok::<(), mmf::Error>(())
    /// ```
    fn typed<T: DeserializeOwned>(self) -> TypedValueStream<T>;
}

impl ValueStreamExt for ValueStream {
    fn typed<T: DeserializeOwned>(self) -> TypedValueStream<T> {
        TypedValueStream {
            values: self,
            _type: PhantomData,
        }
    }
}

/// The stream returned by [`ValueStreamExt::typed`] (feature `async`): each value decoded into
/// `T`, with its [`Meta`].
#[must_use = "streams do nothing unless polled"]
pub struct TypedValueStream<T> {
    values: ValueStream,
    _type: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for TypedValueStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedValueStream")
            .field("type", &std::any::type_name::<T>())
            .field("values", &self.values)
            .finish()
    }
}

impl<T> TypedValueStream<T> {
    /// The follower: the channel the name leads to now, and whether it is gone.
    pub fn follower(&self) -> &Follower {
        self.values.follower()
    }

    /// The generation of the last value given out, decoded or not
    /// ([`ValueStream::last_generation`]).
    pub fn last_generation(&self) -> u64 {
        self.values.last_generation()
    }

    /// The incarnation of the channel the stream follows now, which the next value comes
    /// from; after a writer's restart, the new channel's from the look that found it, before
    /// its first value ([`ValueStream::incarnation`]).
    pub fn incarnation(&self) -> u64 {
        self.values.incarnation()
    }

    /// The untyped stream beneath.
    pub fn into_inner(self) -> ValueStream {
        self.values
    }
}

impl<T: DeserializeOwned> TypedValueStream<T> {
    /// The next item: a value decoded, or an error (the stream goes on after it). What
    /// `StreamExt::next` gives, with no dependency. Cancel-safe, as
    /// [`ValueStream::recv`].
    ///
    /// # Errors
    ///
    /// [`ValueStream::recv`]'s errors (see [`Follower::values`]), as
    /// [`Error::Channel`](crate::Error::Channel); and a value that cannot become a `T`,
    /// [`Error::Decode`](crate::Error::Decode) (or [`Error::WrongTag`](crate::Error::WrongTag)
    /// for bytes) with its generation, as [`typed`](ValueStreamExt::typed) says.
    ///
    /// # Panics
    ///
    /// A poll panics where this process cannot start mmf's notifier thread (no threads left),
    /// as [`Channel::changed`](mmf_core::Channel::changed) says; a later poll tries again.
    pub async fn recv(&mut self) -> Result<(Meta, T)> {
        let (meta, bytes) = self.values.recv().await?;
        decode_read(self.values.follower().channel(), meta, &bytes)
    }
}

impl<T: DeserializeOwned> Stream for TypedValueStream<T> {
    type Item = Result<(Meta, T)>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        Pin::new(&mut this.values).poll_next(cx).map(|item| {
            item.map(|value| {
                let (meta, bytes) = value?;
                decode_read(this.values.follower().channel(), meta, &bytes)
            })
        })
    }
}

/// Never terminated, as [`ValueStream`]: for `futures::select!`.
impl<T: DeserializeOwned> futures_core::stream::FusedStream for TypedValueStream<T> {
    fn is_terminated(&self) -> bool {
        false
    }
}
