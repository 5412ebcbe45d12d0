// SPDX-License-Identifier: GPL-2.0
/*
 * ptshare_probe: which page-table pages map a range of a process.
 *
 * PageTables totals can be fooled by anything else that allocates page tables at the same
 * time. This module lets ptshare see the tables themselves: for a pid and a virtual range it
 * reports, per 2 MiB step, the PFN of the PTE table mapping it and, per 1 GiB step, the PFN of
 * the PMD table. When many processes report the same PFN, they share that table.
 *
 * Locking: the target's mm is pinned (get_task_mm) and its mmap lock held for read. Only steps
 * that intersect a VMA still in the tree are walked, so tables that munmap frees after
 * detaching its VMAs (with the lock downgraded) are never touched. Entries are read
 * locklessly and no PTE table is dereferenced: only its PFN is recorded, so a PTE table being
 * retracted concurrently (khugepaged, under the file's i_mmap lock) yields a stale PFN at
 * worst. The PMD table is read, though, and a shared hugetlb PMD table can be unshared
 * through the rmap under i_mmap_rwsem alone, so hugetlb steps hold that lock for read.
 */
#define pr_fmt(fmt) "ptshare_probe: " fmt

#include <linux/debugfs.h>
#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/pgtable.h>
#include <linux/pid.h>
#include <linux/hugetlb.h>
#include <linux/sched/mm.h>
#include <linux/sched/task.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "ptshare_probe_uapi.h"

static struct dentry *ptshare_probe_dir;

struct ptshare_probe_walk {
	struct ptshare_probe_slot *pte;
	struct ptshare_probe_slot *pmd;
	unsigned long first_pte_step;	/* start >> PMD_SHIFT */
	unsigned long first_pmd_step;	/* start >> PUD_SHIFT */
};

/* Fills the slots of the 2 MiB step at addr and of the 1 GiB step containing it. */
static void ptshare_probe_step(struct mm_struct *mm, unsigned long addr,
			       struct ptshare_probe_walk *w)
{
	struct ptshare_probe_slot *pte = &w->pte[(addr >> PMD_SHIFT) - w->first_pte_step];
	struct ptshare_probe_slot *pmd = &w->pmd[(addr >> PUD_SHIFT) - w->first_pmd_step];
	pgd_t *pgdp;
	p4d_t *p4dp;
	pud_t *pudp, pud;
	pmd_t *pmdp, pmdv;

	pgdp = pgd_offset(mm, addr);
	if (pgd_none(pgdp_get(pgdp)) || pgd_bad(pgdp_get(pgdp)))
		return;
	p4dp = p4d_offset(pgdp, addr);
	if (p4d_none(p4dp_get(p4dp)) || p4d_bad(p4dp_get(p4dp)))
		return;
	pudp = pud_offset(p4dp, addr);
	pud = pudp_get(pudp);
	if (pud_none(pud))
		return;
	if (!pud_present(pud)) {
		pte->kind = PTSHARE_PROBE_OTHER;
		pmd->kind = PTSHARE_PROBE_OTHER;
		return;
	}
	if (pud_leaf(pud)) {
		pte->kind = PTSHARE_PROBE_LEAF;
		pmd->kind = PTSHARE_PROBE_LEAF;
		return;
	}
	pmdp = pmd_offset(pudp, addr);
	/* The PMD table is the page holding this entry. */
	pmd->kind = PTSHARE_PROBE_TABLE;
	pmd->pfn = page_to_pfn(virt_to_page(pmdp));

	pmdv = pmdp_get_lockless(pmdp);
	if (pmd_none(pmdv))
		return;
	if (!pmd_present(pmdv)) {
		pte->kind = PTSHARE_PROBE_OTHER;
		return;
	}
	if (pmd_leaf(pmdv)) {
		pte->kind = PTSHARE_PROBE_LEAF;
		return;
	}
	pte->kind = PTSHARE_PROBE_TABLE;
	pte->pfn = pmd_pfn(pmdv);
}

static int ptshare_probe_walk_mm(struct mm_struct *mm, unsigned long start,
				 unsigned long end, struct ptshare_probe_walk *w)
{
	unsigned long addr;
	int err;

	err = mmap_read_lock_killable(mm);
	if (err)
		return err;
	for (addr = start; addr < end; addr += PMD_SIZE) {
		struct address_space *mapping = NULL;
		struct vm_area_struct *vma;

		vma = find_vma_intersection(mm, addr, min(addr + PMD_SIZE, end));
		if (!vma)
			continue;
		if (is_vm_hugetlb_page(vma) && vma->vm_file)
			mapping = vma->vm_file->f_mapping;
		if (mapping)
			i_mmap_lock_read(mapping);
		ptshare_probe_step(mm, max(addr, vma->vm_start), w);
		if (mapping)
			i_mmap_unlock_read(mapping);
	}
	mmap_read_unlock(mm);
	return 0;
}

static long ptshare_probe_query(struct ptshare_probe_query __user *uq)
{
	struct ptshare_probe_walk w = {};
	struct ptshare_probe_query q;
	unsigned long start, end, npte, npmd, i;
	struct task_struct *task;
	struct mm_struct *mm;
	struct pid *pid;
	long err;

	if (copy_from_user(&q, uq, sizeof(q)))
		return -EFAULT;
	if (q.version != PTSHARE_PROBE_VERSION)
		return -EINVAL;
	/* Empty, inverted, beyond user space, or more work than one call may do. */
	if (q.start >= q.end || q.end > TASK_SIZE_MAX ||
	    q.end - q.start > PTSHARE_PROBE_MAX_RANGE)
		return -EINVAL;

	start = ALIGN_DOWN(q.start, PMD_SIZE);
	end = ALIGN(q.end, PMD_SIZE);
	npte = (end - start) >> PMD_SHIFT;
	npmd = (ALIGN(q.end, PUD_SIZE) - ALIGN_DOWN(q.start, PUD_SIZE)) >> PUD_SHIFT;
	if (q.n_pte_slots < npte || q.n_pmd_slots < npmd)
		return -EINVAL;

	pid = find_get_pid(q.pid);
	if (!pid)
		return -ESRCH;
	task = get_pid_task(pid, PIDTYPE_PID);
	put_pid(pid);
	if (!task)
		return -ESRCH;
	/* NULL for kernel threads and for a task past exit_mm(). */
	mm = get_task_mm(task);
	put_task_struct(task);
	if (!mm)
		return -ESRCH;

	w.pte = kvcalloc(npte, sizeof(*w.pte), GFP_KERNEL);
	w.pmd = kvcalloc(npmd, sizeof(*w.pmd), GFP_KERNEL);
	if (!w.pte || !w.pmd) {
		err = -ENOMEM;
		goto out;
	}
	w.first_pte_step = start >> PMD_SHIFT;
	w.first_pmd_step = ALIGN_DOWN(q.start, PUD_SIZE) >> PUD_SHIFT;

	err = ptshare_probe_walk_mm(mm, start, end, &w);
	if (err)
		goto out;

	q.pte_tables = 0;
	q.pmd_leaves = 0;
	q.pmd_tables = 0;
	q.pud_leaves = 0;
	for (i = 0; i < npte; i++) {
		q.pte_tables += w.pte[i].kind == PTSHARE_PROBE_TABLE;
		q.pmd_leaves += w.pte[i].kind == PTSHARE_PROBE_LEAF;
	}
	for (i = 0; i < npmd; i++) {
		q.pmd_tables += w.pmd[i].kind == PTSHARE_PROBE_TABLE;
		q.pud_leaves += w.pmd[i].kind == PTSHARE_PROBE_LEAF;
	}
	q.n_pte_slots = npte;
	q.n_pmd_slots = npmd;

	err = 0;
	if (copy_to_user(u64_to_user_ptr(q.pte_slots), w.pte, npte * sizeof(*w.pte)) ||
	    copy_to_user(u64_to_user_ptr(q.pmd_slots), w.pmd, npmd * sizeof(*w.pmd)) ||
	    copy_to_user(uq, &q, sizeof(q)))
		err = -EFAULT;
out:
	kvfree(w.pte);
	kvfree(w.pmd);
	mmput(mm);
	return err;
}

static long ptshare_probe_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	switch (cmd) {
	case PTSHARE_PROBE_IOC_QUERY:
		return ptshare_probe_query((struct ptshare_probe_query __user *)arg);
	default:
		return -ENOTTY;
	}
}

/* No compat_ioctl: debugfs' proxy forwards only unlocked_ioctl, so only 64-bit callers work. */
static const struct file_operations ptshare_probe_query_fops = {
	.owner = THIS_MODULE,
	.unlocked_ioctl = ptshare_probe_ioctl,
};

static ssize_t ptshare_probe_version_read(struct file *file, char __user *buf, size_t len,
					  loff_t *ppos)
{
	char text[16];
	int n = scnprintf(text, sizeof(text), "%d\n", PTSHARE_PROBE_VERSION);

	return simple_read_from_buffer(buf, len, ppos, text, n);
}

static const struct file_operations ptshare_probe_version_fops = {
	.owner = THIS_MODULE,
	.read = ptshare_probe_version_read,
};

static int __init ptshare_probe_init(void)
{
	ptshare_probe_dir = debugfs_create_dir("ptshare_probe", NULL);
	if (IS_ERR(ptshare_probe_dir)) {
		pr_err("cannot create debugfs directory: %ld\n", PTR_ERR(ptshare_probe_dir));
		return PTR_ERR(ptshare_probe_dir);
	}
	debugfs_create_file("query", 0600, ptshare_probe_dir, NULL, &ptshare_probe_query_fops);
	debugfs_create_file("version", 0400, ptshare_probe_dir, NULL, &ptshare_probe_version_fops);
	pr_info("interface version %d\n", PTSHARE_PROBE_VERSION);
	return 0;
}

static void __exit ptshare_probe_exit(void)
{
	debugfs_remove(ptshare_probe_dir);
}

module_init(ptshare_probe_init);
module_exit(ptshare_probe_exit);
MODULE_DESCRIPTION("ptshare: report the page-table pages that map a process's range");
MODULE_LICENSE("GPL");
