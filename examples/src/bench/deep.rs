//! Deep async stacks for the benchmark fixture (`bench_fixture --async-depth D`):
//! each thread runs a current-thread tokio runtime whose one task awaits
//! through D nested async functions, each a distinct function (a const-generic
//! instantiation) reached through a boxed `dyn Future`, as a server's
//! middleware layers and handlers are (axum/tower box their futures), and
//! parks (or spins) in the innermost poll. Every frame is then a different
//! function for the unwinder, unlike `descend`'s recursion through one.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

type Level = Pin<Box<dyn Future<Output = u32> + Send>>;

/// Most nesting levels [`run`] offers.
pub const MAX_DEPTH: usize = 160;

/// One level: awaits the next one (a different function), or the leaf.
async fn level<const K: usize>(depth: usize, leaf: fn()) -> u32 {
    let inner = if depth == 0 {
        Box::pin(Leaf(leaf)) as Level
    } else {
        make(depth - 1, leaf)
    };
    std::hint::black_box(inner.await) + 1
}

#[inline(never)]
fn boxed<const K: usize>(depth: usize, leaf: fn()) -> Level {
    Box::pin(level::<K>(depth, leaf))
}

/// The future of level `depth` (distinct for every depth).
fn make(depth: usize, leaf: fn()) -> Level {
    let at = LEVELS.get(depth).copied().unwrap_or(boxed::<0>);
    at(depth, leaf)
}

/// Runs `leaf` from inside a poll, once.
struct Leaf(fn());

impl Future for Leaf {
    type Output = u32;
    #[inline(never)]
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<u32> {
        crate::READY.fetch_add(1, std::sync::atomic::Ordering::Release);
        (self.0)();
        Poll::Ready(0)
    }
}

/// Builds a current-thread runtime and blocks on `depth` nested levels
/// whose innermost poll runs `leaf`.
pub fn run(depth: usize, leaf: fn()) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    let depth = depth.clamp(1, MAX_DEPTH) - 1;
    std::hint::black_box(rt.block_on(make(depth, leaf)));
}

type MakeLevel = fn(usize, fn()) -> Level;

static LEVELS: [MakeLevel; MAX_DEPTH] = [
    boxed::<0>,
    boxed::<1>,
    boxed::<2>,
    boxed::<3>,
    boxed::<4>,
    boxed::<5>,
    boxed::<6>,
    boxed::<7>,
    boxed::<8>,
    boxed::<9>,
    boxed::<10>,
    boxed::<11>,
    boxed::<12>,
    boxed::<13>,
    boxed::<14>,
    boxed::<15>,
    boxed::<16>,
    boxed::<17>,
    boxed::<18>,
    boxed::<19>,
    boxed::<20>,
    boxed::<21>,
    boxed::<22>,
    boxed::<23>,
    boxed::<24>,
    boxed::<25>,
    boxed::<26>,
    boxed::<27>,
    boxed::<28>,
    boxed::<29>,
    boxed::<30>,
    boxed::<31>,
    boxed::<32>,
    boxed::<33>,
    boxed::<34>,
    boxed::<35>,
    boxed::<36>,
    boxed::<37>,
    boxed::<38>,
    boxed::<39>,
    boxed::<40>,
    boxed::<41>,
    boxed::<42>,
    boxed::<43>,
    boxed::<44>,
    boxed::<45>,
    boxed::<46>,
    boxed::<47>,
    boxed::<48>,
    boxed::<49>,
    boxed::<50>,
    boxed::<51>,
    boxed::<52>,
    boxed::<53>,
    boxed::<54>,
    boxed::<55>,
    boxed::<56>,
    boxed::<57>,
    boxed::<58>,
    boxed::<59>,
    boxed::<60>,
    boxed::<61>,
    boxed::<62>,
    boxed::<63>,
    boxed::<64>,
    boxed::<65>,
    boxed::<66>,
    boxed::<67>,
    boxed::<68>,
    boxed::<69>,
    boxed::<70>,
    boxed::<71>,
    boxed::<72>,
    boxed::<73>,
    boxed::<74>,
    boxed::<75>,
    boxed::<76>,
    boxed::<77>,
    boxed::<78>,
    boxed::<79>,
    boxed::<80>,
    boxed::<81>,
    boxed::<82>,
    boxed::<83>,
    boxed::<84>,
    boxed::<85>,
    boxed::<86>,
    boxed::<87>,
    boxed::<88>,
    boxed::<89>,
    boxed::<90>,
    boxed::<91>,
    boxed::<92>,
    boxed::<93>,
    boxed::<94>,
    boxed::<95>,
    boxed::<96>,
    boxed::<97>,
    boxed::<98>,
    boxed::<99>,
    boxed::<100>,
    boxed::<101>,
    boxed::<102>,
    boxed::<103>,
    boxed::<104>,
    boxed::<105>,
    boxed::<106>,
    boxed::<107>,
    boxed::<108>,
    boxed::<109>,
    boxed::<110>,
    boxed::<111>,
    boxed::<112>,
    boxed::<113>,
    boxed::<114>,
    boxed::<115>,
    boxed::<116>,
    boxed::<117>,
    boxed::<118>,
    boxed::<119>,
    boxed::<120>,
    boxed::<121>,
    boxed::<122>,
    boxed::<123>,
    boxed::<124>,
    boxed::<125>,
    boxed::<126>,
    boxed::<127>,
    boxed::<128>,
    boxed::<129>,
    boxed::<130>,
    boxed::<131>,
    boxed::<132>,
    boxed::<133>,
    boxed::<134>,
    boxed::<135>,
    boxed::<136>,
    boxed::<137>,
    boxed::<138>,
    boxed::<139>,
    boxed::<140>,
    boxed::<141>,
    boxed::<142>,
    boxed::<143>,
    boxed::<144>,
    boxed::<145>,
    boxed::<146>,
    boxed::<147>,
    boxed::<148>,
    boxed::<149>,
    boxed::<150>,
    boxed::<151>,
    boxed::<152>,
    boxed::<153>,
    boxed::<154>,
    boxed::<155>,
    boxed::<156>,
    boxed::<157>,
    boxed::<158>,
    boxed::<159>,
];
