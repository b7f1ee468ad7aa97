//! Client-side rate limit for API requests (`--kube-api-qps`,
//! `--kube-api-burst`): a token bucket as a tower layer around the kube
//! client's HTTP service.
//!
//! The kube client drives its service through a `Buffer`, which calls
//! `poll_ready` before each request; the bucket waits there, so requests are
//! delayed, never refused. Long-running watches take one token when opened.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};

/// A token bucket: `qps` tokens per second, at most `burst` saved up.
#[derive(Debug)]
pub struct TokenBucket {
    qps: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(qps: f64, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            qps,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Take a token at `now`, or say how long to wait for one.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.qps).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.qps))
        }
    }
}

/// Layer adding a [`RateLimit`]; `qps <= 0` disables limiting.
#[derive(Clone, Copy, Debug)]
pub struct RateLimitLayer {
    qps: f64,
    burst: u32,
}

impl RateLimitLayer {
    /// `qps` requests per second on average, bursts of `burst`.
    pub fn new(qps: f64, burst: u32) -> Self {
        Self { qps, burst }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;
    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit {
            inner,
            bucket: (self.qps > 0.0)
                .then(|| TokenBucket::new(self.qps, self.burst, Instant::now())),
            ready: false,
            sleep: None,
        }
    }
}

/// The rate-limited service.
pub struct RateLimit<S> {
    inner: S,
    bucket: Option<TokenBucket>,
    ready: bool,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<S, R> Service<R> for RateLimit<S>
where
    S: Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        if let Some(bucket) = self.bucket.as_mut() {
            while !self.ready {
                if let Some(s) = self.sleep.as_mut() {
                    if s.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    self.sleep = None;
                }
                match bucket.try_take(Instant::now()) {
                    Ok(()) => self.ready = true,
                    Err(wait) => self.sleep = Some(Box::pin(tokio::time::sleep(wait))),
                }
            }
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        self.ready = false;
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_qps() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10.0, 3, t0);
        assert!(b.try_take(t0).is_ok());
        assert!(b.try_take(t0).is_ok());
        assert!(b.try_take(t0).is_ok());
        let wait = b.try_take(t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-6, "{wait:?}");
        assert!(b.try_take(t0 + Duration::from_millis(100)).is_ok());
        // never more than burst saved up
        let later = t0 + Duration::from_secs(100);
        for _ in 0..3 {
            assert!(b.try_take(later).is_ok());
        }
        assert!(b.try_take(later).is_err());
    }

    /// The layer, not only the bucket: a service behind it is called at
    /// most `burst` times at once and then at `qps`, on tokio's paused
    /// clock (virtual time advances only through the layer's own sleeps,
    /// so the instants are exact, whatever the machine's load).
    #[tokio::test(start_paused = true)]
    async fn the_layer_holds_calls_back_to_the_rate() {
        use tower::{service_fn, Service, ServiceExt};
        let t0 = Instant::now();
        let inner = service_fn(|_: ()| async { Ok::<_, std::convert::Infallible>(Instant::now()) });
        let mut svc = RateLimitLayer::new(10.0, 2).layer(inner);
        let mut at = Vec::new();
        for _ in 0..5 {
            at.push(svc.ready().await.unwrap().call(()).await.unwrap() - t0);
        }
        let ms: Vec<u128> = at.iter().map(|d| d.as_millis()).collect();
        assert_eq!(ms, [0, 0, 100, 200, 300]);

        // qps 0 means no limit.
        let mut free = RateLimitLayer::new(0.0, 0).layer(inner);
        for _ in 0..5 {
            let when = free.ready().await.unwrap().call(()).await.unwrap();
            assert_eq!(when - t0, at[4], "no waiting without a limit");
        }
    }
}
