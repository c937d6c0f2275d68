//! Typed values of a followed name, as a stream (feature `async`): [`ValuesExt::typed`].

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use mmf_core::{Meta, Values};
use serde::de::DeserializeOwned;

use crate::{decode, Result};

/// Typed items for the stream of a followed name's values, [`Values`] (feature `async`).
pub trait ValuesExt {
    /// Decodes every value of the stream into `T`, as [`ChannelExt::read`](crate::ChannelExt::read)
    /// decodes one: a MessagePack or JSON value as serde decodes it, a text value into a type
    /// that takes a string.
    ///
    /// A value that cannot become a `T` (another shape, or bytes) is an `Err` item that carries
    /// its generation ([`Error::generation`](crate::Error::generation)), and the stream goes on
    /// with the next value: one bad value from another process does not end a service's
    /// subscription. The errors of the stream itself are [`Values`]'.
    ///
    /// ```
    /// use std::time::Duration;
    /// use mmf_codec::{Channel, ChannelExt, ValuesExt};
    /// use mmf_core::{Follower, Location};
    /// use serde::Deserialize;
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     struct W(std::thread::Thread);
    /// #     impl std::task::Wake for W { fn wake(self: std::sync::Arc<Self>) { self.0.unpark() } }
    /// #     let waker = std::sync::Arc::new(W(std::thread::current())).into();
    /// #     let mut cx = std::task::Context::from_waker(&waker);
    /// #     let mut f = std::pin::pin!(f);
    /// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v } std::thread::park() }
    /// # }
    ///
    /// #[derive(Deserialize, Debug, PartialEq)]
    /// struct Config { threads: u32 }
    ///
    /// # let name = format!("typed-doc-{}", std::process::id());
    /// let writer = Channel::create(&name, 256)?;
    /// let follower = Follower::open(&Location::parse(&name)?, Duration::ZERO)?;
    /// let mut configs = follower.values(0).typed::<Config>();
    /// std::thread::spawn(move || -> mmf_codec::Result<()> {
    ///     writer.publish_str("not a config")?;
    ///     std::thread::sleep(Duration::from_millis(20));
    ///     writer.publish(&serde_json::json!({ "threads": 8 }))?;
    ///     Ok(())
    /// });
    ///
    /// // `configs.recv().await` in async code, or `StreamExt::next`.
    /// let mut got = block_on(configs.recv()).expect("an item");
    /// if let Err(e) = &got {
    ///     assert_eq!(e.generation(), Some(1));          // the text: said, and skipped
    ///     got = block_on(configs.recv()).expect("an item");
    /// }
    /// let (meta, config) = got?;
    /// assert_eq!((meta.generation, config), (2, Config { threads: 8 }));
    /// # Channel::remove(&name)?;
    /// # Ok::<(), mmf_codec::Error>(())
    /// ```
    fn typed<T: DeserializeOwned>(self) -> TypedValues<T>;
}

impl ValuesExt for Values {
    fn typed<T: DeserializeOwned>(self) -> TypedValues<T> {
        TypedValues {
            values: self,
            _type: PhantomData,
        }
    }
}

/// The stream returned by [`ValuesExt::typed`] (feature `async`): each value decoded into `T`,
/// with its [`Meta`].
#[must_use = "streams do nothing unless polled"]
pub struct TypedValues<T> {
    values: Values,
    _type: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for TypedValues<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedValues")
            .field("type", &std::any::type_name::<T>())
            .field("values", &self.values)
            .finish()
    }
}

impl<T: DeserializeOwned> TypedValues<T> {
    /// The untyped stream beneath: its follower (the channel the name leads to now) and the
    /// generation of the last value given out.
    pub fn values(&self) -> &Values {
        &self.values
    }

    /// The next item: a value, an error, or `None` once the stream has ended (after an error
    /// of the channel or the name). What `StreamExt::next` gives, with no dependency.
    pub fn recv(&mut self) -> impl Future<Output = Option<Result<(Meta, T)>>> + '_ {
        std::future::poll_fn(move |cx| Pin::new(&mut *self).poll_next(cx))
    }
}

impl<T: DeserializeOwned> Stream for TypedValues<T> {
    type Item = Result<(Meta, T)>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        Pin::new(&mut this.values).poll_next(cx).map(|item| {
            item.map(|value| {
                let (meta, bytes) = value?;
                decode(this.values.follower().channel(), meta, &bytes)
            })
        })
    }
}

impl<T: DeserializeOwned> futures_core::FusedStream for TypedValues<T> {
    fn is_terminated(&self) -> bool {
        self.values.is_terminated()
    }
}
