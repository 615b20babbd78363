//! `/t/:slug/members`: the tenant's members and pending invitations (docs/members.md).
//! Owners and admins invite by email, change roles, remove members and revoke
//! invitations; everyone else who sees the whole tenant reads the list. Memberships from
//! the identity provider's groups show no controls. Every form is a plain form posting
//! to its server function, so the page works without JavaScript.

use crate::api::members::{
    list_members, ChangeMemberRole, InvitationRow, InviteMember, MemberRow, MembersView,
    RemoveMember, RevokeInvitation,
};
use crate::domain::members::INVITATION_DAYS;
use crate::domain::role::TenantRole;
use crate::ui::common::{
    count, Badge, Card, FormError, Loaded, Notice, PageHeader, Tone, When, INPUT,
};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

#[derive(Clone, Copy)]
struct Actions {
    invite: ServerAction<InviteMember>,
    revoke: ServerAction<RevokeInvitation>,
    change: ServerAction<ChangeMemberRole>,
    remove: ServerAction<RemoveMember>,
}

#[component]
pub fn MembersPage() -> impl IntoView {
    let params = use_params_map();
    let actions = Actions {
        invite: ServerAction::<InviteMember>::new(),
        revoke: ServerAction::<RevokeInvitation>::new(),
        change: ServerAction::<ChangeMemberRole>::new(),
        remove: ServerAction::<RemoveMember>::new(),
    };
    let slug = move || params.read().get("slug").unwrap_or_default();
    let view_data = Resource::new(
        move || {
            (
                slug(),
                actions.invite.version().get(),
                actions.revoke.version().get(),
                actions.change.version().get(),
                actions.remove.version().get(),
            )
        },
        |(slug, ..)| list_members(slug),
    );
    view! {
        <Title text="Members" />
        <Loaded resource=view_data render=move |v| view! {
            <Members slug=slug() data=v actions=actions />
        } />
    }
}

fn done_notice(done: &str) -> Option<&'static str> {
    match done {
        "invited" => Some("Invitation created. It is accepted when that person next signs in with that email."),
        "revoked" => Some("Invitation revoked."),
        "role" => Some("Role changed."),
        "removed" => Some("Member removed: their sessions ended, and their devices and keys on this tenant's shard are expired."),
        _ => None,
    }
}

#[component]
fn Members(slug: String, data: MembersView, actions: Actions) -> impl IntoView {
    let query = use_query_map();
    let error = Signal::derive(move || {
        [
            actions.invite.value().get().and_then(|r| r.err()),
            actions.revoke.value().get().and_then(|r| r.err()),
            actions.change.value().get().and_then(|r| r.err()),
            actions.remove.value().get().and_then(|r| r.err()),
        ]
        .into_iter()
        .flatten()
        .next()
    });
    // Not next to an error from a later form (without JavaScript the error comes back on
    // the address of the last success).
    let notice = move || {
        query
            .read()
            .get("done")
            .filter(|_| error.get().is_none())
            .and_then(|d| done_notice(&d))
            .map(|t| view! { <Notice text=t /> })
    };
    let subtitle = format!(
        "{} · {}",
        count(data.members.len(), "member"),
        count(data.invitations.len(), "open invitation")
    );
    let MembersView {
        members,
        invitations,
        manages,
        grantable,
        is_owner,
    } = data;
    let no_invitations = invitations.is_empty();
    let member_rows = members
        .into_iter()
        .map(|m| {
            view! { <MemberLine slug=slug.clone() m=m manages=manages is_owner=is_owner grantable=grantable.clone() actions=actions /> }
        })
        .collect_view();
    let invitation_rows = invitations
        .into_iter()
        .map(|i| {
            view! { <InvitationLine slug=slug.clone() i=i manages=manages is_owner=is_owner actions=actions /> }
        })
        .collect_view();
    view! {
        <PageHeader title="Members" subtitle=subtitle />
        {notice}
        <div class="mb-4"><FormError error=error /></div>
        <div class="grid gap-6 lg:grid-cols-3">
            <div class="space-y-6 lg:col-span-2">
                <Card title="Members">
                    <div class="overflow-x-auto"><table class="w-full text-left text-sm">
                        <caption class="sr-only">"Members"</caption>
                        <thead class="text-xs uppercase text-slate-500 dark:text-slate-400">
                            <tr>
                                <th scope="col" class="py-2 pr-4">"Member"</th>
                                <th scope="col" class="pr-4">"Role"</th>
                                <th scope="col" class="pr-4">"Source"</th>
                                <th scope="col" class="pr-4">"Joined (UTC)"</th>
                                <th scope="col" class="pr-4">"Last sign-in (UTC)"</th>
                                <th scope="col"><span class="sr-only">"Actions"</span></th>
                            </tr>
                        </thead>
                        <tbody class="divide-y divide-slate-100 dark:divide-slate-800">{member_rows}</tbody>
                    </table></div>
                </Card>
                <Card title="Pending invitations">
                    {if no_invitations {
                        view! { <p class="py-4 text-center text-sm text-slate-500">"No open invitations."</p> }.into_any()
                    } else {
                        view! {
                            <div class="overflow-x-auto"><table class="w-full text-left text-sm">
                                <caption class="sr-only">"Pending invitations"</caption>
                                <thead class="text-xs uppercase text-slate-500 dark:text-slate-400">
                                    <tr>
                                        <th scope="col" class="py-2 pr-4">"Email"</th>
                                        <th scope="col" class="pr-4">"Role"</th>
                                        <th scope="col" class="pr-4">"Invited by"</th>
                                        <th scope="col" class="pr-4">"Expires (UTC)"</th>
                                        <th scope="col"><span class="sr-only">"Actions"</span></th>
                                    </tr>
                                </thead>
                                <tbody class="divide-y divide-slate-100 dark:divide-slate-800">{invitation_rows}</tbody>
                            </table></div>
                        }.into_any()
                    }}
                </Card>
            </div>
            <div class="lg:col-span-1">
                <Card title="Invite a member">
                    {if manages {
                        view! { <InviteForm slug=slug.clone() grantable=grantable.clone() action=actions.invite /> }.into_any()
                    } else {
                        view! { <p class="text-sm text-slate-500">"Only owners and admins invite members and change roles."</p> }.into_any()
                    }}
                </Card>
            </div>
        </div>
    }
}

#[component]
fn InviteForm(
    slug: String,
    grantable: Vec<TenantRole>,
    action: ServerAction<InviteMember>,
) -> impl IntoView {
    view! {
        <ActionForm action=action attr:class="space-y-4" attr:aria-label="Invite a member">
            <input type="hidden" name="slug" value=slug />
            <div>
                <label for="invite-email" class="block text-sm font-medium">"Email"</label>
                <input id="invite-email" name="email" type="email" required maxlength="254" autocomplete="off" class=INPUT placeholder="name@example.com" />
            </div>
            <div>
                <label for="invite-role" class="block text-sm font-medium">"Role"</label>
                <select id="invite-role" name="role" class=INPUT>
                    {grantable.into_iter().map(|r| {
                        let selected = r == TenantRole::Member;
                        view! { <option value=r.as_str() selected=selected>{r.label()}</option> }
                    }).collect_view()}
                </select>
            </div>
            <p class="text-xs text-slate-500">{format!(
                "They join at their next sign-in with this email at your identity provider, within {INVITATION_DAYS} days. The portal sends no email: let them know."
            )}</p>
            <button type="submit" class="btn-primary">"Invite"</button>
        </ActionForm>
    }
}

#[component]
fn MemberLine(
    slug: String,
    m: MemberRow,
    manages: bool,
    is_owner: bool,
    grantable: Vec<TenantRole>,
    actions: Actions,
) -> impl IntoView {
    let editable = manages && !m.from_idp && !m.is_me && (is_owner || m.role != TenantRole::Owner);
    let name = m.name.clone();
    let controls = if editable {
        let (slug2, pid2, name2) = (slug.clone(), m.person_id.clone(), name.clone());
        let current = m.role;
        let (form_label, select_label, button_label) = (
            format!("Change the role of {name}"),
            format!("New role for {name}"),
            format!("Change role of {name}"),
        );
        view! {
            <div class="flex flex-wrap items-center justify-end gap-2">
                <ActionForm action=actions.change attr:class="flex items-center gap-1" attr:aria-label=form_label>
                    <input type="hidden" name="slug" value=slug.clone() />
                    <input type="hidden" name="person_id" value=m.person_id.clone() />
                    <select name="role" aria-label=select_label class="rounded-md border border-slate-300 bg-white px-2 py-1 text-xs dark:border-slate-700 dark:bg-slate-950">
                        {grantable.into_iter().map(|r| view! {
                            <option value=r.as_str() selected=r == current>{r.label()}</option>
                        }).collect_view()}
                    </select>
                    <button type="submit" class="btn-secondary px-2 py-1 text-xs" aria-label=button_label>"Change"</button>
                </ActionForm>
                <details class="relative">
                    <summary class="cursor-pointer rounded px-2 py-1 text-xs text-rose-700 hover:bg-rose-50 dark:text-rose-300 dark:hover:bg-slate-800">"Remove…"</summary>
                    <div class="absolute right-0 z-10 mt-1 w-64 rounded-md border border-slate-200 bg-white p-3 text-xs shadow-lg dark:border-slate-700 dark:bg-slate-900">
                        <p>{format!("Remove {name2} from this tenant? Their portal sessions end, and their devices and keys on the tenant's shard are expired (the devices stay listed until deleted).")}</p>
                        <ActionForm action=actions.remove attr:class="mt-2">
                            <input type="hidden" name="slug" value=slug2 />
                            <input type="hidden" name="person_id" value=pid2 />
                            <button type="submit" class="btn-danger px-2 py-1 text-xs">{format!("Remove {name2}")}</button>
                        </ActionForm>
                    </div>
                </details>
            </div>
        }
        .into_any()
    } else if m.from_idp {
        view! { <span class="text-xs text-slate-500">"Managed in the identity provider"</span> }
            .into_any()
    } else {
        ().into_any()
    };
    let email = m.email.clone().unwrap_or_default();
    view! {
        <tr data-testid="member-row">
            <td class="py-2 pr-4 align-top">
                <div class="font-medium">{m.name.clone()}{m.is_me.then(|| view! { <span class="ml-1 text-xs text-slate-500">"(you)"</span> })}</div>
                <div class="text-xs text-slate-500">{email}</div>
            </td>
            <td class="whitespace-nowrap pr-4 align-top">{m.role.label()}</td>
            <td class="whitespace-nowrap pr-4 align-top">
                {if m.from_idp {
                    view! { <Badge tone=Tone::Info text="Identity provider" /> }.into_any()
                } else {
                    view! { <Badge tone=Tone::Neutral text="Portal" /> }.into_any()
                }}
            </td>
            <td class="pr-4 align-top text-xs">{m.joined.clone().map(|at| view! { <When at /> })}</td>
            <td class="pr-4 align-top text-xs">{match m.last_sign_in.clone() {
                Some(at) => view! { <When at /> }.into_any(),
                None => "never".into_any(),
            }}</td>
            <td class="align-top text-right">{controls}</td>
        </tr>
    }
}

#[component]
fn InvitationLine(
    slug: String,
    i: InvitationRow,
    manages: bool,
    is_owner: bool,
    actions: Actions,
) -> impl IntoView {
    let may_revoke = manages && (is_owner || i.role != TenantRole::Owner);
    let email = i.email.clone();
    view! {
        <tr data-testid="invitation-row">
            <td class="py-2 pr-4">{i.email.clone()}</td>
            <td class="pr-4">{i.role.label()}</td>
            <td class="pr-4 text-xs">{i.invited_by.clone().unwrap_or_default()}</td>
            <td class="pr-4 text-xs">
                {if i.expired {
                    view! { <Badge tone=Tone::Warn text="Expired" /> }.into_any()
                } else {
                    i.expires_at.clone().map(|at| view! { <When at /> }).into_any()
                }}
            </td>
            <td class="text-right">
                {may_revoke.then(move || view! {
                    <ActionForm action=actions.revoke>
                        <input type="hidden" name="slug" value=slug />
                        <input type="hidden" name="invitation_id" value=i.id.clone() />
                        <button type="submit" class="btn-secondary px-2 py-1 text-xs" aria-label=format!("Revoke the invitation of {email}")>"Revoke"</button>
                    </ActionForm>
                })}
            </td>
        </tr>
    }
}
