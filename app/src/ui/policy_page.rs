//! `/t/:slug/policy`: the tenant's access controls (Tailscale's "Access controls" page).
//!
//! An editor with HuJSON highlighting, line numbers and the lines with errors marked;
//! every problem with its line and column; the tenant's tests; what the draft changes
//! against the live policy; a preview ("what can alice reach?", "who can reach
//! tag:db:5432?"); the declared subnets; the history with restore.
//!
//! Without JavaScript the page is a form: a plain textarea, "Check" (answered on this
//! page, the draft kept) and "Save". With JavaScript the text is checked as it is typed.

use crate::api::policy::{
    get_policy, get_policy_revision, preview_policy, CheckPolicy, DiscardPolicyDraft, PolicyView,
    RevertPolicy, SavePolicy, SetSubnets,
};
use crate::domain::policy::diff::{Change, DiffLine};
use crate::domain::policy::highlight::lines;
use crate::domain::policy::Validation;
use crate::ui::common::{
    count, hydrated, utc, Badge, Card, FormError, Loaded, Notice, PageHeader, Tone, INPUT,
};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

#[component]
pub fn PolicyPage() -> impl IntoView {
    let params = use_params_map();
    let save = ServerAction::<SavePolicy>::new();
    let revert = ServerAction::<RevertPolicy>::new();
    let subnets = ServerAction::<SetSubnets>::new();
    let slug = move || params.read().get("slug").unwrap_or_default();
    let data = Resource::new(
        move || {
            (
                slug(),
                save.version().get(),
                revert.version().get(),
                subnets.version().get(),
            )
        },
        |(slug, ..)| get_policy(slug),
    );
    view! {
        <Title text="Access controls" />
        <Loaded resource=data render=move |v| view! {
            <Policy slug=slug() data=v save=save revert=revert subnets=subnets />
        } />
    }
}

fn live_line(data: &PolicyView) -> String {
    let l = &data.live;
    if !l.placed {
        return "This tenant is not placed on a shard yet; its policy applies once it is.".into();
    }
    let base = match l.live_revision {
        None => "Not on the shard yet.".to_string(),
        Some(None) => "The default policy is live on the shard.".to_string(),
        Some(Some(n)) => format!("Revision {n} is live on the shard."),
    };
    match (&l.pending_since, &l.pushed_at) {
        (Some(_), _) => format!("{base} A change is being pushed."),
        (None, Some(at)) => format!("{base} Last pushed {}.", utc(at)),
        (None, None) => base,
    }
}

#[component]
fn Policy(
    slug: String,
    data: PolicyView,
    save: ServerAction<SavePolicy>,
    revert: ServerAction<RevertPolicy>,
    subnets: ServerAction<SetSubnets>,
) -> impl IntoView {
    let query = use_query_map();
    let ready = hydrated();
    let check = ServerAction::<CheckPolicy>::new();
    let (text, set_text) = signal(data.text.clone());
    let comment_ref = NodeRef::<leptos::html::Input>::new();
    let area = NodeRef::<leptos::html::Textarea>::new();
    let overlay = NodeRef::<leptos::html::Div>::new();

    // The checks shown: the newest answer to a check, else what the page came with.
    let initial = (data.validation.clone(), data.diff.clone());
    let shown = Memo::new(move |_| {
        check
            .value()
            .get()
            .and_then(|r| r.ok())
            .map(|c| (c.validation, c.diff))
            .unwrap_or_else(|| initial.clone())
    });

    // Checked as it is typed: 600 ms after the last keystroke.
    let generation = StoredValue::new(0u64);
    let slug_check = slug.clone();
    let on_input = move |ev: leptos::ev::Event| {
        set_text.set(event_target_value(&ev));
        generation.update_value(|g| *g += 1);
        let mine = generation.get_value();
        let slug = slug_check.clone();
        set_timeout(
            move || {
                // The page may have been left or re-rendered (a save) meanwhile: then
                // its signals are gone and there is nothing to check.
                if generation.try_get_value() != Some(mine) {
                    return;
                }
                if let Some(text) = text.try_get_untracked() {
                    check.dispatch(CheckPolicy {
                        slug,
                        text,
                        comment: String::new(),
                    });
                }
            },
            std::time::Duration::from_millis(600),
        );
    };
    let on_scroll = move |_| {
        if let (Some(a), Some(o)) = (area.get_untracked(), overlay.get_untracked()) {
            o.set_scroll_top(a.scroll_top());
            o.set_scroll_left(a.scroll_left());
        }
    };
    // Jumps to a problem's place in the text.
    let go_to = move |line: u32, col: u32| {
        if let Some(a) = area.get_untracked() {
            let t = text.get_untracked();
            let offset: usize = t
                .split('\n')
                .take(line.saturating_sub(1) as usize)
                .map(|l| l.chars().count() + 1)
                .sum::<usize>()
                + col.saturating_sub(1) as usize;
            let _ = a.focus();
            let _ = a.set_selection_range(offset as u32, offset as u32);
        }
    };

    // With JavaScript the form's two buttons go to their actions here.
    let slug_submit = slug.clone();
    let based_on = data.revision.map(|n| n.to_string()).unwrap_or_default();
    let based_on_submit = based_on.clone();
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let is_check = ev
            .submitter()
            .and_then(|b| b.get_attribute("formaction"))
            .is_some();
        let comment = comment_ref
            .get_untracked()
            .map(|c| c.value())
            .unwrap_or_default();
        if is_check {
            check.dispatch(CheckPolicy {
                slug: slug_submit.clone(),
                text: text.get_untracked(),
                comment,
            });
        } else {
            save.dispatch(SavePolicy {
                slug: slug_submit.clone(),
                text: text.get_untracked(),
                comment,
                based_on: based_on_submit.clone(),
            });
        }
    };

    // A save that went through empties the comment for the next one.
    Effect::new(move |_| {
        if let Some(Ok(_)) = save.value().get() {
            if let Some(c) = comment_ref.get_untracked() {
                c.set_value("");
            }
        }
    });

    let error_lines = Memo::new(move |_| {
        shown
            .get()
            .0
            .errors
            .iter()
            .map(|e| e.line)
            .chain(
                shown
                    .get()
                    .0
                    .tests
                    .iter()
                    .filter(|t| !t.passed)
                    .map(|t| t.line),
            )
            .collect::<Vec<u32>>()
    });
    let highlighted = move || {
        let errors = error_lines.get();
        lines(&text.get())
            .into_iter()
            .enumerate()
            .map(|(i, pieces)| {
                let n = i as u32 + 1;
                let bad = errors.contains(&n);
                view! {
                    <div class=if bad { "relative bg-rose-100 dark:bg-rose-950" } else { "relative" }>
                        <span class="absolute -left-11 w-8 select-none text-right text-slate-400">{n}</span>
                        {pieces.into_iter().map(|(k, p)| view! { <span class=k.class()>{p}</span> }).collect_view()}
                        {"\u{200b}"}
                    </div>
                }
            })
            .collect_view()
    };

    let notice = move || {
        let q = query.read();
        match q.get("done").as_deref() {
            Some("saved") => {
                Some("Saved. The shard gets the new policy within seconds.".to_string())
            }
            Some("reverted") => {
                Some("Restored as a new revision. The shard gets it within seconds.".to_string())
            }
            Some("subnets") => Some("Subnets saved.".to_string()),
            _ => q
                .get("checked")
                .map(|_| "Checked. Your draft is kept here until you save it.".to_string()),
        }
    };
    let save_error = Signal::derive(move || save.value().get().and_then(|r| r.err()));
    let revert_error = Signal::derive(move || revert.value().get().and_then(|r| r.err()));
    let subnets_error = Signal::derive(move || subnets.value().get().and_then(|r| r.err()));
    let may_edit = data.may_edit;
    let subtitle = live_line(&data);
    let push_failed = data.live.push_failed;
    let latest = data.revision;
    let live_revision = data.live.live_revision.flatten();
    let slug_form = slug.clone();
    let slug_draft = slug.clone();

    view! {
        <PageHeader title="Access controls" subtitle=subtitle />
        {move || notice().map(|n| view! { <Notice text=n /> })}
        {push_failed.then(|| view! {
            <p role="alert" class="mb-6 rounded-md border border-amber-300 bg-amber-50 px-4 py-3 text-sm text-amber-900 dark:border-amber-700 dark:bg-amber-950 dark:text-amber-200">
                "The last push to your shard did not go through; the policy in force there is unchanged and the portal keeps trying. A revision the shard refused is marked in the history with the reason."
            </p>
        })}
        {data.draft.then(|| {
            let discard = ServerAction::<DiscardPolicyDraft>::new();
            view! {
                <div class="mb-6 flex flex-wrap items-center gap-3 rounded-md border border-indigo-200 bg-indigo-50 px-4 py-3 text-sm text-indigo-900 dark:border-indigo-800 dark:bg-indigo-950 dark:text-indigo-200">
                    <p>"This is your unsaved draft; it is kept for 30 minutes."</p>
                    <ActionForm action=discard attr:aria-label="Discard draft">
                        <input type="hidden" name="slug" value=slug_draft.clone() />
                        <button type="submit" class="btn-secondary px-2 py-1 text-xs">"Discard draft"</button>
                    </ActionForm>
                </div>
            }
        })}
        <div class="grid gap-6 lg:grid-cols-3">
            <div class="space-y-6 lg:col-span-2">
                <Card title="Policy">
                    <form method="post" action="/api/save_policy" on:submit=on_submit aria-label="Policy" class="space-y-4">
                        <FormError error=save_error />
                        <input type="hidden" name="slug" value=slug_form.clone() />
                        <input type="hidden" name="based_on" value=based_on.clone() />
                        <label for="policy-text" class="sr-only">"Policy (HuJSON)"</label>
                        <div class="relative rounded-md border border-slate-300 bg-white dark:border-slate-700 dark:bg-slate-950">
                            <Show when=move || ready.get()>
                                <div node_ref=overlay aria-hidden="true" class="pointer-events-none absolute inset-0 overflow-hidden whitespace-pre py-3 pl-12 pr-3 font-mono text-sm leading-6">
                                    {highlighted}
                                </div>
                            </Show>
                            <textarea
                                id="policy-text"
                                name="text"
                                node_ref=area
                                rows="26"
                                wrap="off"
                                spellcheck="false"
                                autocapitalize="off"
                                readonly=!may_edit
                                aria-describedby="policy-problems"
                                class=move || if ready.get() {
                                    "relative block w-full resize-y overflow-auto whitespace-pre bg-transparent py-3 pl-12 pr-3 font-mono text-sm leading-6 text-transparent caret-slate-900 selection:bg-indigo-200 selection:text-transparent focus:outline-none dark:caret-white dark:selection:bg-indigo-800"
                                } else {
                                    "block w-full resize-y whitespace-pre bg-transparent p-3 font-mono text-sm leading-6 focus:outline-none"
                                }
                                on:input=on_input
                                on:scroll=on_scroll
                            >{data.text.clone()}</textarea>
                        </div>
                        {may_edit.then(|| view! {
                            <div>
                                <label for="comment" class="block text-sm font-medium">"What changed (for the history)"</label>
                                <input id="comment" name="comment" node_ref=comment_ref maxlength="500" class=INPUT value=data.draft_comment.clone() placeholder="Let the CI runners reach the registry" />
                            </div>
                        })}
                        <div class="flex flex-wrap items-center gap-3">
                            <button type="submit" formaction="/api/check_policy" class="btn-secondary">"Check"</button>
                            {may_edit.then(|| view! { <button type="submit" class="btn-primary">"Save"</button> })}
                            {(!may_edit).then(|| view! { <p class="text-sm text-slate-500">"You can read and check the policy; owners, admins and network admins change it."</p> })}
                            <span class="text-xs text-slate-500" aria-live="polite">
                                {move || if check.pending().get() { "Checking…" } else { "" }}
                            </span>
                        </div>
                    </form>
                    <Problems validation=Signal::derive(move || shown.get().0) go_to=Callback::new(move |(l, c)| go_to(l, c)) ready=ready />
                    <Changes diff=Signal::derive(move || shown.get().1) />
                </Card>
                <ViewedRevision slug=slug.clone() revert=revert may_edit=may_edit latest=latest />
            </div>
            <div class="space-y-6">
                <PreviewCard slug=slug.clone() text=text ready=ready />
                <Card title="Your subnets">
                    <p class="text-sm text-slate-600 dark:text-slate-400">"Address ranges behind your subnet routers. Rules may name addresses only inside these; no other tenant on your shard may use them."</p>
                    {if may_edit {
                        view! {
                            <ActionForm action=subnets attr:class="mt-3 space-y-3" attr:aria-label="Subnets">
                                <FormError error=subnets_error />
                                <input type="hidden" name="slug" value=slug.clone() />
                                <label for="subnets" class="block text-sm font-medium">"One per line"</label>
                                <textarea id="subnets" name="subnets" rows="3" class=format!("{INPUT} font-mono") placeholder="10.42.0.0/16">{data.subnets.join("\n")}</textarea>
                                <button type="submit" class="btn-secondary">"Save subnets"</button>
                            </ActionForm>
                        }.into_any()
                    } else if data.subnets.is_empty() {
                        view! { <p class="mt-2 text-sm text-slate-500">"None declared."</p> }.into_any()
                    } else {
                        view! { <ul class="mt-2 font-mono text-sm">{data.subnets.iter().map(|s| view! { <li>{s.clone()}</li> }).collect_view()}</ul> }.into_any()
                    }}
                </Card>
                <Card title="History">
                    <FormError error=revert_error />
                    {if data.history.is_empty() {
                        view! { <p class="text-sm text-slate-500">"Never saved: the default policy applies (your devices reach each other, nothing else)."</p> }.into_any()
                    } else {
                        view! {
                            <ol class="divide-y divide-slate-100 dark:divide-slate-800">
                                {data.history.iter().map(|r| {
                                    let n = r.revision;
                                    view! {
                                        <li class="py-2 text-sm">
                                            <div class="flex items-center gap-2">
                                                <a class="font-medium text-indigo-700 hover:underline dark:text-indigo-300" href=format!("?view={n}")>{format!("Revision {n}")}</a>
                                                {(live_revision == Some(n)).then(|| view! { <Badge tone=Tone::Good text="live" /> })}
                                                {r.rejected_reason.is_some().then(|| view! { <Badge tone=Tone::Bad text="refused" /> })}
                                            </div>
                                            <div class="text-xs text-slate-500">{format!("{} · {}", utc(&r.created_at), r.author_name)}</div>
                                            {(!r.comment.is_empty()).then(|| view! { <div class="text-xs">{r.comment.clone()}</div> })}
                                            {r.rejected_reason.clone().map(|why| view! { <div class="text-xs text-rose-700 dark:text-rose-300">{format!("The shard refused it: {why}")}</div> })}
                                        </li>
                                    }
                                }).collect_view()}
                            </ol>
                        }.into_any()
                    }}
                </Card>
            </div>
        </div>
    }
}

/// Every problem with its place, and the tests.
#[component]
fn Problems(
    validation: Signal<Validation>,
    go_to: Callback<(u32, u32)>,
    ready: ReadSignal<bool>,
) -> impl IntoView {
    view! {
        <div id="policy-problems" class="mt-4 space-y-3" aria-live="polite">
            {move || {
                let v = validation.get();
                let errors = v.errors.clone();
                let n = errors.len();
                (n > 0).then(|| view! {
                    <div role="alert" class="rounded-md border border-rose-300 bg-rose-50 p-3 text-sm text-rose-900 dark:border-rose-800 dark:bg-rose-950 dark:text-rose-200">
                        <p class="font-medium">{count(n, "problem")}</p>
                        <ul class="mt-1 space-y-1">
                            {errors.into_iter().map(|e| {
                                let place = format!("Line {}, column {}", e.line, e.col);
                                let (l, c) = (e.line, e.col);
                                view! {
                                    <li>
                                        {move || if ready.get() {
                                            view! { <button type="button" class="font-mono underline" on:click=move |_| go_to.run((l, c))>{place.clone()}</button> }.into_any()
                                        } else {
                                            view! { <span class="font-mono">{place.clone()}</span> }.into_any()
                                        }}
                                        {format!(": {}", e.message)}
                                    </li>
                                }
                            }).collect_view()}
                        </ul>
                    </div>
                })
            }}
            {move || {
                let tests = validation.get().tests;
                (!tests.is_empty()).then(|| {
                    let failed = tests.iter().filter(|t| !t.passed).count();
                    let title = if failed == 0 {
                        format!("Tests: all {} pass", tests.len())
                    } else {
                        format!("Tests: {failed} of {} fail", tests.len())
                    };
                    view! {
                        <div class="rounded-md border border-slate-200 p-3 text-sm dark:border-slate-700">
                            <p class="font-medium">{title}</p>
                            <ul class="mt-1 space-y-1">
                                {tests.into_iter().map(|t| view! {
                                    <li class=if t.passed { "text-emerald-800 dark:text-emerald-300" } else { "text-rose-800 dark:text-rose-300" }>
                                        {if t.passed { "✓ " } else { "✗ " }}
                                        <span class="font-mono text-xs">{format!("line {}: ", t.line)}</span>
                                        {t.message}
                                    </li>
                                }).collect_view()}
                            </ul>
                        </div>
                    }
                })
            }}
        </div>
    }
}

/// What the draft changes against the live policy.
#[component]
fn Changes(diff: Signal<Vec<DiffLine>>) -> impl IntoView {
    move || {
        let d = diff.get();
        let changed = d.iter().filter(|l| l.change != Change::Same).count();
        if changed == 0 {
            return view! { <p class="mt-4 text-sm text-slate-500">"No changes against the live policy."</p> }.into_any();
        }
        view! {
            <details class="mt-4 rounded-md border border-slate-200 dark:border-slate-700">
                <summary class="cursor-pointer px-3 py-2 text-sm font-medium">{format!("Changes against the live policy ({changed} lines)")}</summary>
                <pre class="overflow-x-auto border-t border-slate-200 py-2 font-mono text-xs leading-5 dark:border-slate-700">
                    {d.into_iter().map(|l| {
                        let (mark, class) = match l.change {
                            Change::Same => ("  ", "block px-3 text-slate-500"),
                            Change::Added => ("+ ", "block bg-emerald-50 px-3 text-emerald-900 dark:bg-emerald-950 dark:text-emerald-200"),
                            Change::Removed => ("- ", "block bg-rose-50 px-3 text-rose-900 dark:bg-rose-950 dark:text-rose-200"),
                        };
                        view! { <span class=class>{format!("{mark}{}", l.text)}</span> }
                    }).collect_view()}
                </pre>
            </details>
        }.into_any()
    }
}

/// "What can … reach?" and "Who can reach …?", answered from the policy in the editor
/// (without JavaScript: the newest saved revision).
#[component]
fn PreviewCard(slug: String, text: ReadSignal<String>, ready: ReadSignal<bool>) -> impl IntoView {
    let query = use_query_map();
    let source = move || query.read().get("source").unwrap_or_default();
    let target = move || query.read().get("target").unwrap_or_default();
    let slug_r = slug.clone();
    let preview = Resource::new(
        move || (slug_r.clone(), source(), target()),
        move |(slug, source, target)| async move {
            if source.is_empty() && target.is_empty() {
                return Ok(None);
            }
            let draft = if ready.get_untracked() {
                text.get_untracked()
            } else {
                String::new()
            };
            preview_policy(slug, draft, source, target).await.map(Some)
        },
    );
    view! {
        <Card title="Preview rules">
            <form method="get" class="space-y-3" aria-label="Preview rules">
                <div>
                    <label for="source" class="block text-sm font-medium">"What can this reach?"</label>
                    <input id="source" name="source" class=INPUT placeholder="alice@acme.com, tag:ci, group:eng" value=source />
                </div>
                <div>
                    <label for="target" class="block text-sm font-medium">"Or: who can reach this?"</label>
                    <input id="target" name="target" class=INPUT placeholder="tag:db:5432" value=target />
                </div>
                <button type="submit" class="btn-secondary">"Preview"</button>
            </form>
            <Suspense>
                {move || preview.get().map(|r| match r {
                    Ok(Some(p)) => {
                        if let Some(problem) = p.problem {
                            view! { <p role="alert" class="mt-3 text-sm text-rose-700 dark:text-rose-300">{problem}</p> }.into_any()
                        } else if !p.grants.is_empty() {
                            view! {
                                <ul class="mt-3 space-y-1 text-sm" aria-label="Reachable">
                                    {p.grants.into_iter().map(|g| view! {
                                        <li><code>{g.destination}</code>{g.proto.map(|p| format!(" ({p})"))}<span class="text-xs text-slate-500">{format!(" · rule at line {}", g.line)}</span></li>
                                    }).collect_view()}
                                </ul>
                            }.into_any()
                        } else if !p.reachers.is_empty() {
                            view! {
                                <ul class="mt-3 space-y-1 text-sm" aria-label="Sources">
                                    {p.reachers.into_iter().map(|r| view! {
                                        <li><code>{r.source}</code>{r.proto.map(|p| format!(" ({p})"))}<span class="text-xs text-slate-500">{format!(" · rule at line {}", r.line)}</span></li>
                                    }).collect_view()}
                                </ul>
                            }.into_any()
                        } else {
                            view! { <p class="mt-3 text-sm text-slate-500">"Nothing: no rule allows it."</p> }.into_any()
                        }
                    }
                    Ok(None) => ().into_any(),
                    Err(e) => view! { <p role="alert" class="mt-3 text-sm text-rose-700">{e.to_string()}</p> }.into_any(),
                })}
            </Suspense>
        </Card>
    }
}

/// A revision from the history (`?view=N`): its text, its changes against the live
/// policy, and "Restore".
#[component]
fn ViewedRevision(
    slug: String,
    revert: ServerAction<RevertPolicy>,
    may_edit: bool,
    latest: Option<i32>,
) -> impl IntoView {
    let query = use_query_map();
    let viewed = move || query.read().get("view").and_then(|v| v.parse::<i32>().ok());
    let slug_r = slug.clone();
    let revision = Resource::new(
        move || (slug_r.clone(), viewed()),
        |(slug, n)| async move {
            match n {
                Some(n) => get_policy_revision(slug, n).await.map(Some),
                None => Ok(None),
            }
        },
    );
    view! {
        <Suspense>
            {move || revision.get().map(|r| match r {
                Ok(Some((r, diff))) => {
                    let n = r.revision;
                    let slug = slug.clone();
                    view! {
                        <Card title=format!("Revision {n}")>
                            <p class="text-xs text-slate-500">{format!("{} · {}{}", utc(&r.created_at), r.author_name, if r.comment.is_empty() { String::new() } else { format!(" · {}", r.comment) })}</p>
                            <pre class="mt-3 max-h-96 overflow-auto rounded-md bg-slate-50 p-3 font-mono text-xs leading-5 dark:bg-slate-950">
                                {lines(&r.body).into_iter().map(|pieces| view! {
                                    <span class="block">{pieces.into_iter().map(|(k, p)| view! { <span class=k.class()>{p}</span> }).collect_view()}{"\u{200b}"}</span>
                                }).collect_view()}
                            </pre>
                            <Changes diff=Signal::derive(move || diff.clone()) />
                            {(may_edit && latest != Some(n)).then(|| view! {
                                <ActionForm action=revert attr:class="mt-3" attr:aria-label=format!("Restore revision {n}")>
                                    <input type="hidden" name="slug" value=slug.clone() />
                                    <input type="hidden" name="revision" value=n.to_string() />
                                    <input type="hidden" name="based_on" value=latest.map(|l| l.to_string()).unwrap_or_default() />
                                    <button type="submit" class="btn-secondary">{format!("Restore revision {n}")}</button>
                                </ActionForm>
                            })}
                        </Card>
                    }.into_any()
                }
                Ok(None) => ().into_any(),
                Err(e) => view! { <p role="alert" class="text-sm text-rose-700">{e.to_string()}</p> }.into_any(),
            })}
        </Suspense>
    }
}
